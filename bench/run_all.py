"""Every benchmark in one command (`make bench`): the component benches, then the whole system as real
processes: /recommend through the gateway (cached and uncached), the per-frame latency split, each
service's throughput, the load test, resident memory, and the original pipeline as a baseline.

    python -m bench.run_all [--note "..."]  # full run: reports/bench.{md,json}, load.*, component reports
    python -m bench.run_all --quick         # a short run to check it works, into test-output/bench/

The recommender reads the real catalog when its settings find one (../shared/data), else (and with
--quick) a synthetic one, as the report says. The gateway caches in Redis (REDIS_URL, default redis://127.0.0.1:6379/10).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import cv2.data
import httpx
import numpy as np
import onnxruntime as ort

from bench import forwarding, report
from bench.load import Send, closed_loop, percentiles_ms, run_load
from bench.load import write_report as write_load_report
from bench.memory import memory_mb
from samples.images import frame_jpeg
from samples.music import recommender_env
from services import launch
from services.common.paths import REPO
from services.emotion.pipeline import EmotionPipeline
from services.emotion.runtime import session_options
from services.emotion.settings import EmotionSettings
from services.recommender.settings import RecommenderSettings

# Where `make train-baseline` writes the original architecture (kept out of the service image).
DEFAULT_BASELINE = REPO / "models" / "baseline" / "baseline.onnx"
DEFAULT_REDIS = "redis://127.0.0.1:6379/10"


@dataclass(frozen=True)
class Plan:
    requests: int  # sequential requests per latency measurement
    throughput_s: float  # seconds per throughput measurement
    clients: int  # load test
    load_s: float
    component_requests: int  # passed to the component benches in a quick run
    forwarding_rounds: int  # bench.forwarding: /predict vs /analyze, at `clients` and alone


FULL = Plan(requests=300, throughput_s=15, clients=16, load_s=60, component_requests=0, forwarding_rounds=3)
QUICK = Plan(requests=20, throughput_s=2, clients=4, load_s=3, component_requests=10, forwarding_rounds=1)


@dataclass(frozen=True)
class System:
    urls: dict[str, str]
    pids: dict[str, int]
    catalog: str


@contextlib.contextmanager
def running_system(redis_url: str, synthetic: bool) -> Iterator[System]:
    """The three services as `python -m services` runs them (services/launch.py), on free ports."""
    with contextlib.ExitStack() as stack:
        rec_env: dict[str, str] = {}
        settings = RecommenderSettings()
        if settings.catalog_path and settings.labelled_path and not synthetic:
            catalog = f"{settings.catalog_path} (real)"
        else:
            rec_env = recommender_env(Path(stack.enter_context(tempfile.TemporaryDirectory())))
            catalog = "synthetic, 600 tracks" + ("" if synthetic else " (no real catalog found)")
        running = stack.enter_context(
            launch.stack({"recommender": rec_env, "gateway": {"REDIS_URL": redis_url}})
        )
        urls = {"emotion": running.emotion, "recommender": running.recommender, "gateway": running.gateway}
        yield System(urls, running.pids, catalog)


def sequential(call: Any, n: int) -> list[float]:
    times = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    return times


def p50_ms(latencies_s: list[float]) -> float:
    return round(statistics.median(latencies_s) * 1000, 2)


def recommend_latency(gateway: str, n: int) -> dict[str, Any]:
    """/recommend through the gateway: uncached (a new seed each time) and cached (the same query)."""
    base_seed = random.randrange(16, 1 << 30)  # fresh keys even if Redis still holds an earlier run's
    served: dict[str, list[str]] = {"uncached": [], "cached": []}

    with httpx.Client(base_url=gateway, timeout=30) as http:

        def get(seed: int, series: str) -> None:
            resp = http.get("/recommend", params={"emotion": "happy", "limit": 10, "seed": seed})
            resp.raise_for_status()
            served[series].append(resp.headers.get("X-Cache", "?"))

        get(base_seed - 1, "uncached")  # warm-up
        served["uncached"].clear()
        uncached = sequential(lambda i: get(base_seed + i, "uncached"), n)
        get(base_seed - 2, "cached")  # fills the cache
        served["cached"].clear()
        cached = sequential(lambda _: get(base_seed - 2, "cached"), n)
    # The gateway serves uncached when Redis is slow to answer: the hit ratio shows how often.
    return {
        "uncached_ms": percentiles_ms(uncached),
        "cached_ms": percentiles_ms(cached),
        "requests": n,
        "uncached_misses": served["uncached"].count("miss"),
        "cached_hits": served["cached"].count("hit"),
    }


def latency_split(urls: dict[str, str], frame: bytes, n: int) -> dict[str, Any]:
    """Per-frame time by stage (p50 of sequential requests): the emotion service's own decode / detect /
    classify timings, the emotion and recommender calls as clients see them, and the gateway's share."""
    files = {"image": ("frame.jpg", frame, "image/jpeg")}
    stages: dict[str, list[float]] = {"decode": [], "detect": [], "classify": []}
    base_seed = random.randrange(16, 1 << 30)
    with httpx.Client(timeout=30) as http:

        def analyze(i: int) -> None:
            # recommend=always with a new seed: every frame pays an uncached recommendation.
            resp = http.post(
                f"{urls['gateway']}/analyze",
                files=files,
                params={"recommend": "always", "seed": base_seed + i},
            )
            resp.raise_for_status()
            body = resp.json()
            if not body["faces"] or not body["tracks"]:
                raise RuntimeError("analyze found no face or no tracks")
            for stage in stages:
                stages[stage].append(body["timings_ms"][stage] / 1000)

        def predict(_: int) -> None:
            http.post(f"{urls['emotion']}/predict", files=files).raise_for_status()

        def recommend(i: int) -> None:
            http.get(
                f"{urls['recommender']}/recommend", params={"emotion": "happy", "seed": base_seed + i}
            ).raise_for_status()

        for warm_up in (analyze, predict, recommend):
            warm_up(-1)
        total = sequential(analyze, n)
        emotion = sequential(predict, n)
        recommender = sequential(recommend, n)
    split = {stage: p50_ms(values) for stage, values in stages.items()}
    split["emotion_http_and_framework"] = round(p50_ms(emotion) - sum(split.values()), 2)
    split["recommend"] = p50_ms(recommender)
    split["gateway_overhead"] = round(p50_ms(total) - p50_ms(emotion) - p50_ms(recommender), 2)
    return {
        "analyze_total_ms_p50": p50_ms(total),
        "emotion_predict_ms_p50": p50_ms(emotion),
        "split_ms_p50": split,
        "requests": n,
    }


def throughput(urls: dict[str, str], frame: bytes, seconds: float) -> dict[str, Any]:
    """Closed-loop requests/s of each service on its own, and of the gateway's /analyze."""
    files = {"image": ("frame.jpg", frame, "image/jpeg")}

    async def predict(http: httpx.AsyncClient, *_: int) -> str | None:
        resp = await http.post("/predict", files=files)
        return None if resp.status_code == 200 else f"HTTP {resp.status_code}"

    async def recommend(http: httpx.AsyncClient, client: int, n: int) -> str | None:
        resp = await http.get("/recommend", params={"emotion": "sad", "seed": client * 100_000 + n})
        return None if resp.status_code == 200 else f"HTTP {resp.status_code}"

    async def analyze(http: httpx.AsyncClient, client: int, n: int) -> str | None:
        resp = await http.post("/analyze", files=files, params={"session": f"tp-{client}"})
        return None if resp.status_code == 200 else f"HTTP {resp.status_code}"

    runs: dict[str, tuple[str, Send, int]] = {
        "emotion POST /predict": (urls["emotion"], predict, 4),
        "recommender GET /recommend (uncached)": (urls["recommender"], recommend, 4),
        "gateway POST /analyze": (urls["gateway"], analyze, 4),
    }
    return {
        name: asyncio.run(closed_loop(url, send, clients, seconds))
        for name, (url, send, clients) in runs.items()
    }


def baseline(frame: bytes, model_path: Path, n: int) -> dict[str, Any]:
    """The original pipeline (Haar cascade at full resolution, scaleFactor 1.3, minNeighbors 5, then the
    original CNN per face) against ours, in-process on one frame, one thread each."""
    if not model_path.exists():
        return {"skipped": f"no baseline model at {model_path}"}
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    session = ort.InferenceSession(str(model_path), session_options(1), providers=["CPUExecutionProvider"])
    graph_input = session.get_inputs()[0]
    h, w = graph_input.shape[2], graph_input.shape[3]

    def original(_: int) -> int:
        grey = cv2.imdecode(np.frombuffer(frame, np.uint8), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            raise ValueError("the frame is not a decodable image")
        faces = cascade.detectMultiScale(grey, 1.3, 5)
        for x, y, fw, fh in faces:
            crop = cv2.resize(grey[y : y + fh, x : x + fw], (w, h)).astype(np.float32)
            session.run(None, {graph_input.name: crop[None, None]})
        return len(faces)

    ours_pipeline = EmotionPipeline(EmotionSettings(threads=1, solo_threads=0))

    def ours(_: int) -> int:
        return len(ours_pipeline.predict(frame, True).faces)

    original(0)  # warm-up
    ours(0)
    base_ms, ours_ms = p50_ms(sequential(original, n)), p50_ms(sequential(ours, n))
    return {
        "original_ms_p50": base_ms,
        "ours_ms_p50": ours_ms,
        "speedup": round(base_ms / ours_ms, 2),
        "original_faces": original(0),
        "ours_faces": ours(0),
        "model": str(model_path.name),
        "requests": n,
        "ours_model": ours_pipeline.settings.model_path.name,
        "ours_card": card_summary(ours_pipeline.settings.card_file),
        "original_card": card_summary(model_path.with_name(model_path.stem + ".card.json")),
    }


def card_summary(path: Path) -> dict[str, Any]:
    """Size and FER2013 test accuracy from a model card written by training.emotion.export/evaluate."""
    if not path.exists():
        return {}
    card = json.loads(path.read_text())
    return {
        "parameters": card["architecture"]["parameters"],
        "size_mb": round(card["size_bytes"] / 1e6, 1),
        "test_single": card.get("metrics", {}).get("test_single"),
    }


def component_benches(plan: Plan, out: Path, note: str) -> dict[str, str]:
    """The services' own benches (they start their own processes), writing their reports beside ours."""
    # A full run keeps each bench's own defaults; a quick one only checks that they run.
    quick = plan is QUICK
    n = str(plan.component_requests)
    runs = {
        "bench.emotion_bench": [*(["--requests", n] if quick else []), "--out", str(out), "--note", note],
        "bench.overload": [*(["--duration", "3"] if quick else []), "--out", str(out), "--note", note],
        # The on-device engine in headless Chromium (reports/ondevice/browser.md with --out reports/ondevice).
        "bench.ondevice": [
            *(["--frames", "5", "--warmup", "2"] if quick else []),
            "--out",
            str(out / "ondevice"),
        ],
        "bench.recommend_bench": [
            *(["--requests", n, "--warmup", n, "--startup-runs", "1", "--wrk-seconds", "1"] if quick else []),
            "--out",
            str(out),
        ],
    }
    done = {}
    for module, args in runs.items():
        try:
            code = importlib.import_module(module).main(args)
        except SystemExit as exc:  # argparse refusing, e.g. the recommender bench without a real catalog
            code = exc.code
        done[module] = "ok" if not code else f"exit {code}"
    return done


NOTES = [
    "A 640x480 JPEG frame with one face. recommend: /recommend through the gateway, sequential, uncached "
    "(cache misses) and cached (served from Redis). latency_split: p50 of sequential /analyze with uncached "
    "tracks; gateway_overhead = /analyze total - emotion /predict - recommender /recommend, the last two "
    "timed by a client calling those services directly. throughput: closed loops of 4 clients each.",
    *forwarding.NOTES,
    "load: the load test (load.md beside this file). memory: resident memory after the load (MiB). "
    "baseline: the original pipeline (Haar cascade 1.3/5 + the original CNN) against ours, in process, "
    "one thread; speedup = original time / ours; the cards' FER2013 test accuracy and size. components: "
    "the component benches, their own reports beside this file.",
]


def machine() -> str:
    load = os.getloadavg()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few seconds per measurement, to check it works")
    ap.add_argument("--out", type=Path, help="default: reports/ (full run) or test-output/bench/ (--quick)")
    ap.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="the original CNN as ONNX")
    ap.add_argument("--skip-components", action="store_true", help="only the system-level measurements")
    ap.add_argument("--note", default="", help="context for the report, e.g. what else the machine runs")
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else FULL
    out = args.out or (REPO / "test-output" / "bench" if args.quick else REPO / "reports")
    out.mkdir(parents=True, exist_ok=True)
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS
    start_machine = machine()

    components = {} if args.skip_components else component_benches(plan, out, args.note)
    frame = frame_jpeg()
    with running_system(redis_url, synthetic=args.quick) as system:
        result: dict[str, Any] = {
            "command": "python -m bench.run_all" + (" --quick" if args.quick else ""),
            "note": args.note,
            "catalog": system.catalog,
            "machine_start": start_machine,
            "recommend": recommend_latency(system.urls["gateway"], plan.requests),
            "latency_split": latency_split(system.urls, frame, plan.requests),
            "throughput": throughput(system.urls, frame, plan.throughput_s),
            "forwarding": forwarding.measure(
                system.urls, system.pids, frame, plan.clients, plan.throughput_s, plan.forwarding_rounds
            ),
        }
        load = asyncio.run(run_load(system.urls["gateway"], plan.clients, plan.load_s))
        write_load_report(load, out, args.note)
        result["load"] = load
        result["memory"] = {name: memory_mb(pid) for name, pid in system.pids.items()}
    result["baseline"] = baseline(frame, args.baseline, plan.requests)
    cards = result["baseline"].get("ours_card"), result["baseline"].get("original_card")
    if all(card and card.get("test_single") for card in cards):
        ours, original = cards
        result["baseline"]["accuracy_ratio"] = round(ours["test_single"] / original["test_single"], 3)
        result["baseline"]["size_ratio"] = round(ours["size_mb"] / original["size_mb"], 2)
    result["components"] = components
    result["machine_end"] = machine()
    report.write(out, "bench", result, title="moodtunes benchmark", command=result["command"], notes=NOTES)
    return 1 if load["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

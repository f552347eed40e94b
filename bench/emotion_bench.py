"""Latency and throughput of the emotion service's POST /predict, against a real server process.

    .venv/bin/python -m bench.emotion_bench [--requests 200] [--rounds 5] [--concurrency 1 8]

The frame is a 640x480 JPEG with one face, made from scikit-image's astronaut photo. For each
concurrency it reports p50/p99 latency as the client sees it, requests per second, and the server's
own split into decode / detect / classify (the response's timings_ms), for each EMOTION_SOLO_THREADS
value given. "full frame" requests are raw JPEG bodies; "tracked" requests are multipart with the
`boxes` field (the face box of a full-frame answer, as a live client sends its previous frame's
boxes), so only the region around the face is searched. It also times the emotion model alone on
one core (ONNX Runtime, intra_op_num_threads=1) per face.
Writes reports/emotion_bench.json and reports/emotion_bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

from bench import report
from samples.images import frame_jpeg
from services.emotion.classifier import EmotionClassifier
from services.emotion.pipeline import EmotionPipeline, parse_boxes
from services.emotion.settings import DetectSettings, EmotionSettings, TrackSettings
from services.launch import service

STAGES = ("decode", "detect", "classify")


def load(url: str, body: bytes, content_type: str, requests: int, concurrency: int) -> dict[str, Any]:
    """`concurrency` clients, each on its own keep-alive connection, post `requests` frames in all.
    The clients are stdlib http.client in threads: httpx's async client costs ~2 ms of its own per
    request on this machine (see `client_floor_ms`), which would be counted as server latency."""
    where = urlsplit(url).netloc
    latencies: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    faces: list[int] = []
    regions: list[bool] = []
    errors = 0
    lock = threading.Lock()
    left = requests
    ready = threading.Barrier(concurrency + 1)

    def worker() -> None:
        nonlocal errors, left
        conn = http.client.HTTPConnection(where, timeout=30)

        def post() -> tuple[int, bytes]:
            conn.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
            answer = conn.getresponse()
            return answer.status, answer.read()

        for _ in range(5):  # warm-up, not counted
            post()
        ready.wait()
        while True:
            with lock:
                if left == 0:
                    break
                left -= 1
            start = time.perf_counter()
            status, data = post()
            elapsed = time.perf_counter() - start
            with lock:
                if status != 200:
                    errors += 1
                    continue
                latencies.append(elapsed * 1000)
                answer = json.loads(data)
                faces.append(len(answer["faces"]))
                regions.append(answer.get("region") is not None)
                for s in STAGES:
                    stages[s].append(answer["timings_ms"][s])
        conn.close()

    workers = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in workers:
        t.start()
    ready.wait()
    wall = time.perf_counter()
    for t in workers:
        t.join()
    wall = time.perf_counter() - wall

    return {
        "latencies": latencies,
        "stages": stages,
        "faces": faces,
        "regions": regions,
        "errors": errors,
        "wall": wall,
    }


def summary(mode: str, concurrency: int, rounds: list[dict]) -> dict[str, Any]:
    """Latency percentiles over the requests of all rounds, and each round's p50."""
    lat = np.array([x for r in rounds for x in r["latencies"]])
    stages = {s: [x for r in rounds for x in r["stages"][s]] for s in STAGES}
    faces = [x for r in rounds for x in r["faces"]]
    return {
        "mode": mode,
        "concurrency": concurrency,
        "rounds": len(rounds),
        "requests": int(lat.size),
        "errors": sum(r["errors"] for r in rounds),
        "answered_from_region": int(sum(sum(r["regions"]) for r in rounds)),
        "faces_per_frame": float(np.mean(faces)) if faces else 0.0,
        "latency_ms": {
            "p50": float(np.percentile(lat, 50)),
            "p90": float(np.percentile(lat, 90)),
            "p99": float(np.percentile(lat, 99)),
            "mean": float(lat.mean()),
        },
        "round_p50_ms": [float(np.median(r["latencies"])) for r in rounds],
        "requests_per_s": float(lat.size / sum(r["wall"] for r in rounds)),
        "server_ms_p50": {s: float(np.median(v)) for s, v in stages.items()},
        "server_ms_mean": {s: float(np.mean(v)) for s, v in stages.items()},
    }


def client_floor_ms(url: str, repeats: int = 300) -> dict[str, float]:
    """Round trip of GET /healthz (no work in the route): what HTTP, the framework and each client
    add to every request, here and with httpx's async client (which the gateway uses)."""
    where = urlsplit(url).netloc
    conn = http.client.HTTPConnection(where, timeout=30)

    def plain() -> None:
        conn.request("GET", "/healthz")
        conn.getresponse().read()

    async def with_httpx() -> list[float]:
        async with httpx.AsyncClient(base_url=url) as client:
            times = []
            for i in range(repeats + 20):
                start = time.perf_counter()
                await client.get("/healthz")
                if i >= 20:
                    times.append((time.perf_counter() - start) * 1000)
            return times

    times = []
    for i in range(repeats + 20):
        start = time.perf_counter()
        plain()
        if i >= 20:
            times.append((time.perf_counter() - start) * 1000)
    conn.close()
    return {
        "http_client_p50": float(np.median(times)),
        "httpx_async_p50": float(np.median(asyncio.run(with_httpx()))),
    }


def multipart(body: bytes, boxes: str) -> tuple[bytes, str]:
    """The tracked request as a browser sends it: the frame and its `boxes` field."""
    request = httpx.Request(
        "POST",
        "http://service/predict",
        files={"image": ("frame.jpg", body, "image/jpeg")},
        data={"boxes": boxes},
    )
    return request.read(), request.headers["Content-Type"]


def first_boxes(body: bytes) -> str:
    """The boxes a live client would send with the next frame: this frame's full-frame answer."""
    answer = EmotionPipeline(EmotionSettings(threads=1)).predict(body)
    return json.dumps([face.box.model_dump() for face in answer.faces])


def pipeline_cpu(
    body: bytes, max_side: int, boxes: str | None = None, repeats: int = 100
) -> dict[str, float]:
    """The service's pipeline in this process: wall and CPU time (thread_time) per frame. With one
    ONNX Runtime thread all work runs in the calling thread, so CPU time is what a frame costs
    on an idle core, even while other processes load the machine."""
    pipeline = EmotionPipeline(
        EmotionSettings(threads=1, solo_threads=0, detect=DetectSettings(max_side=max_side))
    )
    hint = None if boxes is None else parse_boxes(boxes.encode(), pipeline.settings.detect.max_faces)
    for _ in range(10):
        pipeline.predict(body, hint=hint)
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.thread_time()
        pipeline.predict(body, hint=hint)
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    return {
        "wall_ms_p50": float(np.median(wall)),
        "cpu_ms_p50": float(np.median(cpu)),
        "cpu_ms_min": float(np.min(cpu)),
    }


def model_per_face(repeats: int = 300) -> dict[str, float | str]:
    """The emotion CNN alone, one core: batch of 1 and per face in a batch of 8."""
    settings = EmotionSettings()
    clf = EmotionClassifier(settings.model_path, settings.card_file, threads=1)
    h, w = clf.size
    rng = np.random.default_rng(0)
    out: dict[str, float | str] = {}
    for batch in (1, 8):
        crops = rng.uniform(0, 255, (batch, h, w)).astype(np.float32)
        for _ in range(20):
            clf.logits(crops)
        times = []
        for _ in range(repeats // batch + 20):
            start = time.perf_counter()
            clf.logits(crops)
            times.append((time.perf_counter() - start) * 1000 / batch)
        out[f"batch{batch}_ms_per_face_p50"] = float(np.median(times))
    out["model"] = clf.name
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of --requests per row, alternating between configurations",
    )
    parser.add_argument(
        "--solo-threads",
        type=int,
        nargs="+",
        default=[EmotionSettings().solo_threads, 0],
        help="EMOTION_SOLO_THREADS values to compare; the first is the service default",
    )
    parser.add_argument("--detect-max-side", type=int, default=DetectSettings().max_side)
    parser.add_argument("--note", default="", help="context for the report, e.g. machine load")
    parser.add_argument("--out", type=Path, default=report.REPORTS)
    args = parser.parse_args(argv)
    body = frame_jpeg()
    boxes = first_boxes(body)
    tracked_body, tracked_type = multipart(body, boxes)
    # Every configuration's server runs at once and the rounds alternate between them, so that
    # all see the same moments of a machine whose speed drifts (shared host).
    with contextlib.ExitStack() as stack:
        urls = {
            solo: stack.enter_context(
                service(
                    "emotion",
                    timeout=180,
                    env={
                        "EMOTION_THREADS": "1",
                        "EMOTION_SOLO_THREADS": str(solo),
                        "EMOTION_DETECT_MAX_SIDE": str(args.detect_max_side),
                    },
                )
            )
            for solo in args.solo_threads
        }
        floor = client_floor_ms(urls[args.solo_threads[0]])
        runs: list[dict[str, Any]] = []
        for mode, request, content_type in (
            ("full frame", body, "image/jpeg"),
            ("tracked", tracked_body, tracked_type),
        ):
            for c in args.concurrency:
                rounds: dict[int, list[dict]] = {solo: [] for solo in args.solo_threads}
                for _ in range(args.rounds):
                    for solo, url in urls.items():
                        rounds[solo].append(load(url, request, content_type, args.requests, c))
                runs += [{"solo_threads": solo, **summary(mode, c, rs)} for solo, rs in rounds.items()]
    load_avg = os.getloadavg()
    in_process = {
        f"full frame <={side}": pipeline_cpu(body, side)
        for side in sorted({256, 320, 480, args.detect_max_side})
    }
    in_process[f"tracked <={TrackSettings().max_side}"] = pipeline_cpu(body, args.detect_max_side, boxes)
    result = {
        "frame_bytes": len(body),
        "solo_threads": args.solo_threads,
        "boxes": boxes,
        "detect_max_side": args.detect_max_side,
        "client_floor_ms": floor,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load_avg[0]:.1f} at the end of the HTTP runs",
        "note": args.note,
        "runs": runs,
        "model": model_per_face(),
        "in_process": in_process,
    }
    first = [r for r in runs if r["concurrency"] == 1 and r["solo_threads"] == args.solo_threads[0]]
    result["target_p50_15ms_at_concurrency_1"] = {
        r["mode"]: {
            "met": r["latency_ms"]["p50"] <= 15,
            "rounds_met": sum(x <= 15 for x in r["round_p50_ms"]),
            "rounds": r["rounds"],
        }
        for r in first
    }
    report.write(
        args.out,
        "emotion_bench",
        result,
        title="Emotion service benchmark",
        command="python -m bench.emotion_bench",
        notes=[
            "A 640x480 JPEG frame, one face (scikit-image astronaut). Servers: one server process per "
            "EMOTION_SOLO_THREADS value (EMOTION_THREADS=1), all running at once; the requests come in "
            "rounds that alternate between them (latency pools every round; round_p50_ms: each round's "
            "own). solo_threads: ONNX Runtime threads for a request that runs alone (0 = always one "
            "thread per request). full frame: raw JPEG body, the whole frame searched; tracked: multipart "
            "with the `boxes` field (the full-frame answer's box, as a live client sends its previous "
            "frame's boxes): only the region around it is searched.",
            "Clients: stdlib http.client, one keep-alive connection each; client_floor_ms: the GET /healthz "
            "round trip with it and with httpx's async client (so this bench does not use httpx: its own "
            "time would count as latency). model: the emotion model alone, one core. in_process: the "
            "pipeline in process on one thread (CPU time = thread_time, far less sensitive to other load "
            "than wall time).",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The recommender on a catalog 15 times the real one: start-up, resident memory and /recommend latency,
side by side with the real catalog in the same run.

    .venv/bin/python -m bench.recommend_scale [--tracks 1000000] [--requests 2000]

The synthetic catalog is generated first when build/catalog-<tracks>.parquet is missing
(bench.synthetic_catalog: the real catalog's joint distribution, fake ids). Each catalog is served by a
real uvicorn process, started as a pod would start it; start-up is the time from launch until /readyz
answers 200 (imports, catalog load, model fit, candidate pools), with the service's own breakdown from
/metrics. Latency: the requests of bench.recommend_bench, one at a time over a kept-alive connection,
to both services in alternating rounds. Memory: VmRSS and VmHWM from /proc. In-process, the same
start-up once more with its parts (the mood model's exact KNN over every track timed on its own), and
the pause of one full garbage collection over what start-up built, before and after gc.freeze() (what
the service does once ready).
Writes reports/recommend_scale.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import report
from bench.memory import memory_mb, server_pid
from bench.recommend_bench import percentiles, requests
from bench.report import REPORTS
from bench.synthetic_catalog import main as synthesize
from services.common.paths import REPO, data_dir
from services.launch import SERVICES, free_port, service
from services.recommender.pipeline import build
from services.recommender.settings import RecommenderSettings

APP = SERVICES["recommender"][0]
P99_TARGET_MS = 10.0


def startup_seconds(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "recommender_startup_seconds":
                return sample.value
    raise LookupError("recommender_startup_seconds not on /metrics")


def in_process(catalog: Path, labelled: Path) -> dict[str, float]:
    ranker, timings = build(RecommenderSettings(catalog_path=catalog, labelled_path=labelled))
    started = time.perf_counter()
    ranker.model.predict_proba(ranker.catalog.features)
    knn = time.perf_counter() - started
    pauses = {}
    for label in ("full_gc_ms", "full_gc_after_freeze_ms"):
        if label == "full_gc_after_freeze_ms":
            gc.freeze()
        started = time.perf_counter()
        gc.collect()
        pauses[label] = (time.perf_counter() - started) * 1000
    gc.unfreeze()
    del ranker
    gc.collect()
    return {**timings, "knn_predict_s": knn, **pauses}


def timed_requests(url: str, params: list[dict[str, str]]) -> list[float]:
    samples = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for query in params:
            started = time.perf_counter()
            client.get("/recommend", params=query).raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def served(catalogs: dict[str, Path], labelled: Path, n: int, rounds: int, warmup: int) -> dict[str, Any]:
    """Starts one service per catalog (one after the other, each timed to ready), then, with all of them
    up, sends the same requests to each in alternating rounds, so that every catalog sees the same
    moments of a busy machine."""
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        urls, pids = {}, {}
        for name, catalog in catalogs.items():
            port = free_port()
            env = {"RECOMMENDER_CATALOG_PATH": str(catalog), "RECOMMENDER_LABELLED_PATH": str(labelled)}
            launched = time.perf_counter()
            urls[name] = stack.enter_context(service("recommender", port=port, env=env, timeout=3600))
            pids[name] = server_pid(APP, port)
            out[name] = {
                "catalog": str(catalog),
                "catalog_mb": catalog.stat().st_size / 2**20,
                "launch_to_ready_s": time.perf_counter() - launched,
                "service_startup_s": startup_seconds(urls[name]),
                "memory_at_ready": memory_mb(pids[name]),
            }
        params = requests(warmup + n)
        for url in urls.values():
            timed_requests(url, params[:warmup])
        samples: dict[str, list[float]] = {name: [] for name in urls}
        chunk = n // rounds
        for r in range(rounds):
            batch = params[warmup + r * chunk : warmup + (r + 1) * chunk]
            for name in list(urls)[:: 1 if r % 2 == 0 else -1]:
                samples[name] += timed_requests(urls[name], batch)
        for name in urls:
            out[name]["http_ms"] = percentiles(samples[name])
            out[name]["memory_after_requests"] = memory_mb(pids[name])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args(argv)
    result = run(args)
    report.write(
        REPORTS,
        "recommend_scale",
        result,
        title=f"Recommender at {args.tracks:,} tracks",
        command=f"python -m bench.recommend_scale --tracks {args.tracks}",
        notes=[
            "The synthetic catalog: bench/synthetic_catalog.py, the real catalog's joint distribution, fake "
            "ids. Both services ran at once and took the same requests in alternating rounds; start-ups "
            "and in-process figures ran one after the other. The service freezes what start-up built "
            "(services/recommender/pipeline.py), so the HTTP figures ran with it frozen; full_gc_ms shows "
            f"the pause it avoids. Target p99 <= {P99_TARGET_MS:g} ms.",
        ],
    )
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    music = data_dir() / "music"
    real, labelled = music / "catalog.parquet", music / "mood_labelled.parquet"
    synthetic = REPO / "build" / f"catalog-{args.tracks}.parquet"
    if not synthetic.exists():
        synthesize(["--tracks", str(args.tracks), "--catalog", str(real), "--out", str(synthetic)])
    load_before = os.getloadavg()
    catalogs = {"real": real, "synthetic": synthetic}
    runs = served(catalogs, labelled, args.requests, args.rounds, args.warmup)
    for name, path in catalogs.items():
        runs[name]["in_process"] = in_process(path, labelled)
    return {
        "command": "python -m bench.recommend_scale",
        "tracks": args.tracks,
        "rounds": args.rounds,
        "runs": runs,
        "p99_target_ms": P99_TARGET_MS,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
    }


if __name__ == "__main__":
    raise SystemExit(main())

"""Recommender benchmark: start-up time and /recommend latency on the configured (70k) catalog, no cache.

    .venv/bin/python -m bench.recommend_bench [--requests 2000]

Start-up (catalog load + model fit + candidate pools) is timed in-process; latency is timed from an
HTTP client against a real server process, one request at a time over a kept-alive connection, varying
emotion, strategy, limit, seed and exclusions so no two consecutive requests are alike. The Python client
(httpx) spends about as much CPU per request as the route itself, on the same cores, so the same requests
are then replayed by wrk (a C client; `apt-get install wrk`), one connection, when it is installed; both
figures are reported. Writes reports/recommend_bench.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import report
from services.common.contracts import EMOTIONS, Emotion, Strategy
from services.common.params import RecommendParams
from services.launch import service
from services.recommender.pipeline import build
from services.recommender.settings import RecommenderSettings


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms)
    return {
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "mean": float(a.mean()),
        "n": len(a),
    }


def startup(settings: RecommenderSettings, runs: int) -> dict[str, float]:
    walls, cpus, parts = [], [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        _, timings = build(settings)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        parts.append(timings)
    best = int(np.argmin(walls))
    return {
        "wall_s_median": statistics.median(walls),
        "wall_s_min": min(walls),
        "wall_s_max": max(walls),
        "cpu_s_median": statistics.median(cpus),
        **{f"best_{k}": v for k, v in parts[best].items()},
    }


def requests(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        params = {
            "emotion": EMOTIONS[i % len(EMOTIONS)],
            "strategy": list(Strategy)[i % 2].value,
            "limit": str(int(rng.choice([10, 10, 10, 20, 50]))),
        }
        if rng.random() < 0.7:
            params["seed"] = str(int(rng.integers(1 << 30)))
        out.append(params)
    return out


def latency(url: str, n: int, warmup: int) -> tuple[dict[str, float], list[str]]:
    """Percentiles from httpx, and the paths (with their queries) it asked for after the warm-up."""
    samples = []
    played: list[str] = []
    paths: list[str] = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for i, params in enumerate(requests(warmup + n)):
            if played and i % 3 == 0:
                params["exclude"] = ",".join(played[-20:])  # a session excluding what it just heard
            start = time.perf_counter()
            r = client.get("/recommend", params=params)
            elapsed = (time.perf_counter() - start) * 1000
            r.raise_for_status()
            played += [t["id"] for t in r.json()["tracks"][:3]]
            if i >= warmup:
                samples.append(elapsed)
                paths.append(r.request.url.raw_path.decode("ascii"))
    return percentiles(samples), paths


# wrk's script: the paths in turn, and at the end its own latency record (microseconds) as JSON.
WRK_SCRIPT = """
paths = {%s}
i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n{"p50": %%d, "p90": %%d, "p99": %%d, "max": %%d, "mean": %%f, "n": %%d, "errors": %%d}\\n',
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def wrk_latency(url: str, paths: list[str], seconds: int) -> dict[str, float] | None:
    """The same requests replayed by wrk over one connection for `seconds`; None without wrk."""
    if shutil.which("wrk") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT % ",".join(json.dumps(p) for p in paths))
        script.flush()
        out = subprocess.run(
            ["wrk", "-t1", "-c1", f"-d{seconds}s", "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    raw = json.loads(out.strip().splitlines()[-1])
    return {k: raw[k] / 1000 if k in ("p50", "p90", "p99", "max", "mean") else raw[k] for k in raw}


def in_process(settings: RecommenderSettings, n: int) -> dict[str, float]:
    ranker, _ = build(settings)
    samples = []
    for params in requests(n, seed=1):
        start = time.perf_counter()
        ranker.recommend(
            RecommendParams(
                Emotion(params["emotion"]),
                int(params["limit"]),
                Strategy(params["strategy"]),
                seed=int(params["seed"]) if "seed" in params else None,
            )
        )
        samples.append((time.perf_counter() - start) * 1000)
    return percentiles(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=report.REPORTS)
    args = parser.parse_args(argv)
    settings = RecommenderSettings()
    if settings.catalog_path is None or settings.labelled_path is None:
        parser.error("set RECOMMENDER_CATALOG_PATH and RECOMMENDER_LABELLED_PATH (the 70k catalog)")
    load_before = os.getloadavg()
    result: dict[str, Any] = {
        "catalog": str(settings.catalog_path),
        "startup": startup(settings, args.startup_runs),
        "ranking_in_process_ms": in_process(settings, args.requests),
    }
    with service("recommender", timeout=120) as url:
        result["http_ms"], paths = latency(url, args.requests, args.warmup)
        result["wrk_ms"] = wrk_latency(url, paths, args.wrk_seconds)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    ok_latency, ok_start = result["http_ms"]["p99"] <= 5.0, result["startup"]["wall_s_median"] <= 5.0
    wrk = result["wrk_ms"]
    ok_wrk = wrk is not None and wrk["p99"] <= 5.0 and not wrk["errors"]
    result["targets"] = {"p99_le_5ms": ok_latency, "p99_le_5ms_wrk": ok_wrk, "startup_le_5s": ok_start}
    report.write(
        args.out,
        "recommend_bench",
        result,
        title="Recommender benchmark",
        command=" ".join(["python -m bench.recommend_bench", *(argv if argv is not None else sys.argv[1:])]),
        notes=[
            "The configured catalog, no cache. startup: load + fit + pools, wall and CPU time, median of "
            "the runs, and the best run's parts; http_ms: GET /recommend over HTTP from httpx (the Python "
            "client's own time per request is in it, on the same cores as the service); wrk_ms: the same "
            "requests from wrk (a C client), one connection, closer to what the service itself adds; "
            "ranking_in_process_ms: the ranking call alone. Targets: p99 <= 5 ms, start-up <= 5 s.",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

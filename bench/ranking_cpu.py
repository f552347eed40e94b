"""CPU time of one /recommend ranking in-process, for two versions of the code side by side.

    .venv/bin/python -m bench.ranking_cpu --before REV [--rounds 4] [--requests 1000]

On a shared, busy machine wall-clock latency mostly measures the other jobs; CPU time per request
(time.thread_time) much less so. The code at REV (git archive into a temp folder) and the working tree
each rank the same requests on the configured catalog, in separate processes, alternating rounds (before,
after, before, ...), so both see the same phases of the machine. Writes reports/ranking_cpu.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench import report
from services.common.paths import REPO

# Run in each version's process (its own `services` first on sys.path): builds that version's ranker
# with its defaults and prints the CPU time of the build (model fit + pools) and of each request as JSON.
CHILD = """
import inspect, json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
from services.common.contracts import EMOTIONS, Emotion, Strategy
from services.recommender.settings import RecommenderSettings
from services.recommender.catalog import load_catalog
from services.recommender.mood_model import KnnConfig, MoodModel, load_labelled
from services.recommender.ranking import Ranker
threadpool_limits(1)
s = RecommenderSettings()
catalog = load_catalog(s.catalog_path)
start = time.thread_time()
model = MoodModel(KnnConfig.load(s.knn_config_path)).fit(load_labelled(s.labelled_path))
ranker = Ranker(catalog, model, s.pool_size)
build = time.thread_time() - start
# Revisions before 2a08ce8 take the request's fields one by one; later ones a RecommendParams.
bundled = "params" in inspect.signature(ranker.recommend_dicts).parameters
if bundled:
    from services.common.params import RecommendParams
rng = np.random.default_rng(0)
out = []
for i in range(int(sys.argv[1])):
    limit = int(rng.choice([10, 10, 10, 20, 50]))
    seed = int(rng.integers(1 << 30)) if rng.random() < 0.7 else None
    start = time.thread_time()
    emotion, strategy = Emotion(EMOTIONS[i % 7]), list(Strategy)[i % 2]
    if bundled:
        ranker.recommend_dicts(RecommendParams(emotion, limit, strategy, seed=seed))
    else:
        ranker.recommend_dicts(emotion, strategy, limit, frozenset(), seed)
    out.append((time.thread_time() - start) * 1000)
print(json.dumps({"build_s": build, "requests_ms": out}))
"""


def run(tree: Path, requests: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(requests)],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def stats(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="git revision to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=report.REPORTS)
    args = parser.parse_args(argv)
    samples: dict[str, list[float]] = {"before": [], "after": []}
    builds: dict[str, list[float]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", args.before], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        trees = {"before": Path(tmp), "after": REPO}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                measured = run(tree, args.requests)
                samples[name] += measured["requests_ms"]
                builds[name].append(measured["build_s"])
    result = {
        "before": args.before,
        "rounds": args.rounds,
        "requests_per_round": args.requests,
        "cpu_ms": {name: stats(s) for name, s in samples.items()},
        "build_cpu_s_median": {name: float(np.median(b)) for name, b in builds.items()},
        "loadavg": os.getloadavg(),
    }
    b, a = result["cpu_ms"]["before"], result["cpu_ms"]["after"]
    result["ratio_after_over_before"] = {k: a[k] / b[k] for k in ("p50", "p99", "mean")}
    report.write(
        args.out,
        "ranking_cpu",
        result,
        title="Ranking CPU time per request, two versions side by side",
        command=" ".join(["python -m bench.ranking_cpu", *(argv if argv is not None else sys.argv[1:])]),
        notes=[
            f"before: revision {args.before}; after: the working tree. Alternating rounds; the configured "
            "catalog; CPU time of the ranking call, limits 10/20/50, 70% seeded. build_cpu_s_median: "
            "start-up CPU time (model fit + candidate pools), median of the rounds."
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

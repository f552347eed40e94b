"""Solo threads under load: the gateway load test against two whole stacks, one whose emotion service
may run a lone request on several cores (the default) and one that never does (EMOTION_SOLO_THREADS=0),
in alternating rounds. Reports requests/s and latency per round, and how many frames ran solo (the
emotion service's emotion_solo_runs_total).

    .venv/bin/python -m bench.solo_load [--rounds 4] [--duration 20] [--clients 16]

Writes reports/solo_load.json and reports/solo_load.md. Needs the real catalog (MOODTUNES_DATA or the
recommender's default paths) and Redis is not used (in-process cache), as in `make run` without Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import report
from bench.load import run_load
from services.emotion.settings import EmotionSettings
from services.launch import backends_env, free_port, metrics_url, service


def solo_runs(emotion_metrics: str) -> float:
    text = httpx.get(emotion_metrics, timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "emotion_solo_runs_total"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per round")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--out", type=Path, default=report.REPORTS)
    args = parser.parse_args(argv)
    configs = [EmotionSettings().solo_threads, 0]
    rows = []
    with contextlib.ExitStack() as stack:
        recommender = stack.enter_context(service("recommender", free_port()))
        stacks = {}
        for solo in configs:
            metrics = metrics_url(metrics_port := free_port())
            emotion = stack.enter_context(
                service(
                    "emotion", free_port(), env={"EMOTION_SOLO_THREADS": str(solo)}, metrics_port=metrics_port
                )
            )
            gateway = stack.enter_context(
                service("gateway", free_port(), env={**backends_env(emotion, recommender), "REDIS_URL": ""})
            )
            stacks[solo] = (metrics, gateway)
        for round_no in range(args.rounds):
            # A-B, then B-A: whichever runs second in a round must not always be the same one.
            for solo in configs if round_no % 2 == 0 else configs[::-1]:
                metrics, gateway = stacks[solo]
                before = solo_runs(metrics)
                result = asyncio.run(run_load(gateway, args.clients, args.duration))
                rows.append(
                    {
                        "round": round_no + 1,
                        "solo_threads": solo,
                        "requests": result["requests"],
                        "errors": result["errors"],
                        "requests_per_s": result["requests_per_s"],
                        "latency_ms": result["latency_ms"],
                        "solo_runs": solo_runs(metrics) - before,
                    }
                )
    report.write(
        args.out,
        "solo_load",
        {"rounds": rows},
        title="Solo threads under load",
        command=f"python -m bench.solo_load --rounds {args.rounds} --duration {args.duration:.0f} "
        f"--clients {args.clients}",
        notes=[
            f"{args.clients} clients send 640x480 frames to the gateway's POST /analyze; each configuration "
            "(EMOTION_SOLO_THREADS) is a whole stack (emotion, gateway) beside one recommender, all on this "
            "machine; rounds alternate, the order too; solo_runs: frames run solo. Load average at the end: "
            f"{os.getloadavg()[0]:.1f}.",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the gateway costs a frame: the emotion service's POST /predict and the gateway's POST /analyze
(which forwards the frame to that /predict, keeps each client's session steady and answers with the
faces and the tracks) on the same frame, at the same concurrency, in alternating rounds so that both see
the same moments of a shared machine whose speed drifts.

    python -m bench.forwarding [--clients 16] [--seconds 10] [--rounds 3] [--note "..."]

Writes reports/forwarding.{md,json}; `make bench` (bench.run_all) runs the same measurement. The
clients run on the same machine as the services (the gateway's /analyze sessions are in Redis, as
deployed: REDIS_URL, default redis://127.0.0.1:6379/10).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.load import Send, closed_loop
from bench.memory import cpu_seconds
from samples.images import frame_jpeg
from samples.music import recommender_env
from services import launch

DEFAULT_REDIS = "redis://127.0.0.1:6379/10"
# The done-when of the gateway's forwarding (issue 18): /analyze keeps this share of /predict's
# throughput, and its p50 is at most this much above /predict's.
TARGET_SHARE = 0.85
TARGET_P50_GAP_MS = 3.0


def senders(frame: bytes) -> dict[str, Send]:
    files = {"image": ("frame.jpg", frame, "image/jpeg")}

    async def predict(http: httpx.AsyncClient, *_: int) -> str | None:
        resp = await http.post("/predict", files=files)
        return None if resp.status_code == 200 else f"HTTP {resp.status_code}"

    async def analyze(http: httpx.AsyncClient, client: int, _: int) -> str | None:
        # One session per client, like one browser tab each.
        resp = await http.post("/analyze", files=files, params={"session": f"fw-{client}"})
        return None if resp.status_code == 200 else f"HTTP {resp.status_code}"

    return {"predict": predict, "analyze": analyze}


def _timed(url: str, send: Send, clients: int, seconds: float, pids: dict[str, int]) -> dict[str, Any]:
    """A closed loop, and the CPU time each service spent per answered request meanwhile."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = asyncio.run(closed_loop(url, send, clients, seconds))
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    return result | {
        "cpu_ms_per_request": {n: round(s * 1000 / max(result["ok"], 1), 2) for n, s in used.items()}
    }


def _pair(
    urls: dict[str, str], send: dict[str, Send], clients: int, seconds: float, pids: dict[str, int]
) -> dict[str, Any]:
    where = {"predict": urls["emotion"], "analyze": urls["gateway"]}
    pair = {name: _timed(where[name], send[name], clients, seconds, pids) for name in where}
    return {
        **pair,
        "share": round(pair["analyze"]["requests_per_s"] / pair["predict"]["requests_per_s"], 3),
        "p50_gap_ms": round(pair["analyze"]["latency_ms"]["p50"] - pair["predict"]["latency_ms"]["p50"], 2),
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    total = {
        name: {
            "ok": sum(r[name]["ok"] for r in runs),
            "errors": sum(r[name]["errors"] for r in runs),
            "requests_per_s": round(statistics.mean(r[name]["requests_per_s"] for r in runs), 2),
            "p50_ms": round(statistics.median(r[name]["latency_ms"]["p50"] for r in runs), 2),
            "cpu_ms_per_request": {
                service: round(statistics.median(r[name]["cpu_ms_per_request"][service] for r in runs), 2)
                for service in runs[0][name]["cpu_ms_per_request"]
            },
        }
        for name in ("predict", "analyze")
    }
    return {
        **total,
        "share": round(total["analyze"]["requests_per_s"] / total["predict"]["requests_per_s"], 3),
        "p50_gap_ms": round(total["analyze"]["p50_ms"] - total["predict"]["p50_ms"], 2),
    }


def cpu_share(summary: dict[str, Any]) -> float:
    predict, analyze = summary["predict"]["cpu_ms_per_request"], summary["analyze"]["cpu_ms_per_request"]
    return float(predict["emotion"] / (analyze["emotion"] + analyze["gateway"]))


NOTES = [
    "A 640x480 JPEG frame with one face; per round, closed loops of seconds_per_run: /predict then /analyze "
    "at `clients` clients (loaded), then each with one client (alone). /analyze keeps a session per client "
    "(tracks fetched only when its steady emotion changes, as the page does). share: /analyze's rate over "
    "/predict's; p50_gap_ms: /analyze's p50 less /predict's; summaries: means of the rounds' rates, "
    "medians of their p50s.",
    "cpu_ms_per_request: CPU time per answered request (median of the rounds), what each service spends on "
    "a frame, which on a machine whose cores all run the model decides the share better than the noisy "
    "rates. cpu_share: if the cores are the limit, the share /analyze keeps: the emotion service's CPU per "
    "/predict over the emotion service's and the gateway's per /analyze (the bench's clients left out).",
    "Targets (issue 18): share >= target share at `clients`; p50 gap at most the target (with one client: "
    "the latency a frame's trip through the gateway adds; loaded, in a closed loop a p50 is about clients / "
    "throughput, so that gap follows the share).",
]


def measure(
    urls: dict[str, str], pids: dict[str, int], frame: bytes, clients: int, seconds: float, rounds: int
) -> dict[str, Any]:
    """`rounds` x (/predict then /analyze at `clients` clients, then the same with one client), each a
    closed loop of `seconds`; `pids`: the services' processes, whose CPU time is read."""
    send = senders(frame)
    runs: list[dict[str, Any]] = [
        {
            "round": i + 1,
            "loaded": _pair(urls, send, clients, seconds, pids),
            "alone": _pair(urls, send, 1, seconds, pids),
        }
        for i in range(rounds)
    ]
    loaded = _summary([r["loaded"] for r in runs])
    alone = _summary([r["alone"] for r in runs])
    return {
        "clients": clients,
        "seconds_per_run": seconds,
        "rounds": runs,
        "loaded": loaded,
        "alone": alone,
        "cpu_share": round(cpu_share(loaded), 3),
        "target": {"share": TARGET_SHARE, "p50_gap_ms": TARGET_P50_GAP_MS},
        "met": {
            "share": loaded["share"] >= TARGET_SHARE,
            "p50_gap_alone": alone["p50_gap_ms"] <= TARGET_P50_GAP_MS,
            "p50_gap_loaded": loaded["p50_gap_ms"] <= TARGET_P50_GAP_MS,
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--note", default="")
    ap.add_argument("--out", type=Path, default=report.REPORTS)
    args = ap.parse_args(argv)
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS
    with (
        tempfile.TemporaryDirectory() as music,
        launch.stack(
            {"recommender": recommender_env(Path(music)), "gateway": {"REDIS_URL": redis_url}}
        ) as stack,
    ):
        urls = {"emotion": stack.emotion, "gateway": stack.gateway}
        result = measure(urls, stack.pids, frame_jpeg(), args.clients, args.seconds, args.rounds)
    command = "python -m bench.forwarding" + "".join(
        f" --{k} {v}"
        for k, v in (("clients", args.clients), ("seconds", args.seconds), ("rounds", args.rounds))
    )
    report.write(
        args.out,
        "forwarding",
        {**result, "note": args.note},
        title="Forwarding: emotion POST /predict vs gateway POST /analyze on the same frame",
        command=command,
        notes=NOTES,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

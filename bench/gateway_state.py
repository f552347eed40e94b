"""The gateway's CPU per /analyze frame with viewers' state in Redis and in process, side by side.

    .venv/bin/python -m bench.gateway_state [--frames 1200] [--rounds 6] [--sessions 20]

One emotion service and one recommender serve two gateways: one with REDIS_URL (a dedicated database of
the machine's Redis, flushed before and after), one without. The same 640x480 frames go to both, one at a
time, in alternating rounds, spread over `--sessions` session ids as live viewers would send them (after
its first frame a session's steady emotion holds, so frames take the path most frames take: no new
tracks). CPU is the gateway process's own user + system time from /proc over the frames it served, so
the other services and the client are not in it. Writes reports/gateway_state.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench import report
from bench.memory import cpu_seconds, server_pid
from bench.report import REPORTS
from samples.images import frame_jpeg
from samples.music import recommender_env
from services.launch import SERVICES, backends_env, free_port, service
from tests.integration.stack import gateway_env, redis_db

REDIS_DB = 12  # this bench's own database: flushed before and after
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def send(url: str, frame: bytes, sessions: list[str], n: int) -> list[float]:
    walls = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(n):
            started = time.perf_counter()
            resp = client.post(
                "/analyze",
                headers={"X-Session-ID": sessions[i % len(sessions)]},
                files={"image": ("frame.jpg", frame, "image/jpeg")},
            )
            resp.raise_for_status()
            walls.append((time.perf_counter() - started) * 1000)
    return walls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=1200, help="per gateway")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sessions", type=int, default=20)
    args = parser.parse_args(argv)
    frame = frame_jpeg()
    sessions = [f"viewer-{i:04d}" for i in range(args.sessions)]
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        redis_url, _ = stack.enter_context(redis_db(REDIS_DB))
        emotion = stack.enter_context(service("emotion"))
        music = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        recommender = stack.enter_context(service("recommender", env=recommender_env(music)))
        gateways, pids = {}, {}
        for name, url in (("redis", redis_url), ("in process", "")):
            port = free_port()
            env = {**backends_env(emotion, recommender), **gateway_env(url)}
            gateways[name] = stack.enter_context(service("gateway", port=port, env=env))
            pids[name] = server_pid(SERVICES["gateway"][0], port)
        for url in gateways.values():  # warm-up: every session's first frame, which fetches tracks
            send(url, frame, sessions, len(sessions))
        cpu = dict.fromkeys(gateways, 0.0)
        walls: dict[str, list[float]] = {name: [] for name in gateways}
        per_round = args.frames // args.rounds
        for r in range(args.rounds):
            for name in list(gateways)[:: 1 if r % 2 == 0 else -1]:
                before = cpu_seconds(pids[name])
                walls[name] += send(gateways[name], frame, sessions, per_round)
                cpu[name] += cpu_seconds(pids[name]) - before
    frames = per_round * args.rounds
    result = {
        "command": "python -m bench.gateway_state",
        "frames_per_gateway": frames,
        "rounds": args.rounds,
        "sessions": args.sessions,
        "gateways": {
            name: {
                "cpu_ms_per_frame": cpu[name] * 1000 / frames,
                "wall_ms_p50": statistics.median(walls[name]),
            }
            for name in gateways
        },
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
    }
    g = result["gateways"]
    result["redis_minus_in_process_cpu_ms"] = (
        g["redis"]["cpu_ms_per_frame"] - g["in process"]["cpu_ms_per_frame"]
    )
    report.write(
        REPORTS,
        "gateway_state",
        result,
        title="Gateway CPU per frame: viewers' state in Redis and in process",
        command="python -m bench.gateway_state",
        notes=[
            f"{frames} frames per gateway, one at a time, in {args.rounds} alternating rounds over "
            f"{args.sessions} sessions; the gateway process's own CPU time from /proc, {TICK_MS:.0f} ms "
            "ticks, on cores shared with other work."
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

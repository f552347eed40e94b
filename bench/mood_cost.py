"""What a viewer in on-device mode costs the servers: the gateway's CPU per POST /api/mood, and Redis's
calls per second for each Redis operation such a request makes.

    .venv/bin/python -m bench.mood_cost [--requests 2000] [--rounds 4] [--sessions 200]

Gateway: one recommender serves two gateways, one with REDIS_URL (a dedicated database of the
machine's Redis, flushed before and after), one without; no emotion service (the page reads faces
itself). The same requests go to both, one at a time, in alternating rounds. Every request is the kind
the page sends, a window of three frames whose steady emotion differs from the session's (happy and sad
in turn), so each one switches the steady emotion and gets ten tracks: from the shared cache (the
catalog's answers for the page's 14 emotion and strategy pairs are cached by the first viewers), after
the session's rate limit, the steadiness script and the record of what was recommended. The per-session
rate limit is raised for the bench (GATEWAY_MOOD_RATE_REQUESTS) so that it lets every request through,
while its bookkeeping still runs in each. CPU is the gateway process's own user + system time from
/proc. Redis: a private, memory-only redis-server; redis-benchmark calls the operations a request makes
(the mood script on random sessions, the cache GET of a recommendation, the record script). Writes
reports/mood_cost.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from bench import report
from bench.memory import cpu_seconds, server_pid
from bench.redis_state import benchmark
from bench.report import REPORTS
from samples.music import recommender_env
from samples.servers import redis_server
from services.common.contracts import EMOTIONS
from services.gateway.state import MOOD_LUA, RECOMMENDED_LUA
from services.launch import SERVICES, backends_env, free_port, service
from tests.gateway.faults import closed_url
from tests.integration.stack import gateway_env, redis_db

REDIS_DB = 9  # this bench's own database: flushed before and after
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
PREFIX = "moodtunes:gateway:"
TTL_MS = 900_000
# A recommendation as the page asks for it (emotion, strategy, limit, no seed, no exclusions).
RECOMMENDED_KEY = f"{PREFIX}recommend:happy:match:10:-:-"


def window(emotion: str) -> dict[str, Any]:
    """Three frames of the page's body: the largest face's probabilities, rounded as the page sends them."""
    face = [0.7 if e == emotion else 0.05 for e in EMOTIONS]
    return {"frames": [{"faces": [face]}] * 3}


WINDOWS = [window("happy"), window("sad")]


def send(url: str, sessions: list[str], start: int, n: int) -> tuple[list[float], int]:
    """n requests, request i from session i % len(sessions), switching its steady emotion; wall times
    (ms) and how many brought tracks."""
    walls, updated = [], 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(start, start + n):
            # Each session alternates happy and sad: every request of a session switches its emotion.
            body = WINDOWS[(i // len(sessions)) % 2]
            started = time.perf_counter()
            resp = client.post("/api/mood", json=body, headers={"X-Session-ID": sessions[i % len(sessions)]})
            walls.append((time.perf_counter() - started) * 1000)
            resp.raise_for_status()
            updated += resp.json()["tracks_updated"]
    return walls, updated


def gateway_cpu(args: argparse.Namespace) -> dict[str, Any]:
    sessions = [f"{i:032x}" for i in range(args.sessions)]  # as long as the page's session ids (UUIDs)
    with contextlib.ExitStack() as stack:
        redis_url, _ = stack.enter_context(redis_db(REDIS_DB))
        music = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        recommender = stack.enter_context(service("recommender", env=recommender_env(music)))
        gateways, pids = {}, {}
        for name, url in (("redis", redis_url), ("in process", "")):
            port = free_port()
            env = {
                **backends_env(closed_url(), recommender),
                **gateway_env(url),
                "GATEWAY_MOOD_RATE_REQUESTS": str(10 * args.requests),
            }
            gateways[name] = stack.enter_context(service("gateway", port=port, env=env))
            pids[name] = server_pid(SERVICES["gateway"][0], port)
        for url in gateways.values():  # warm-up: each session once with each emotion (fills the cache)
            send(url, sessions, 0, 2 * len(sessions))
        cpu = dict.fromkeys(gateways, 0.0)
        walls: dict[str, list[float]] = {name: [] for name in gateways}
        updated = dict.fromkeys(gateways, 0)
        per_round = args.requests // args.rounds
        for r in range(args.rounds):
            for name in list(gateways)[:: 1 if r % 2 == 0 else -1]:
                before = cpu_seconds(pids[name])
                got, fresh = send(gateways[name], sessions, 2 * len(sessions) + r * per_round, per_round)
                cpu[name] += cpu_seconds(pids[name]) - before
                walls[name] += got
                updated[name] += fresh
    requests = per_round * args.rounds
    return {
        "requests_per_gateway": requests,
        "rounds": args.rounds,
        "sessions": args.sessions,
        "gateways": {
            name: {
                "cpu_ms_per_request": cpu[name] * 1000 / requests,
                "wall_ms_p50": statistics.median(walls[name]),
                "tracks_updated_share": updated[name] / requests,
            }
            for name in gateways
        },
    }


def redis_rates(requests: int) -> dict[str, Any]:
    with redis_server() as (url, _):
        client = redis.Redis.from_url(url)
        port = client.connection_pool.connection_kwargs["port"]
        mood = client.script_load(MOOD_LUA)
        recorded = client.script_load(RECOMMENDED_LUA)
        client.set(RECOMMENDED_KEY, "x" * 2000)  # about a cached /recommend answer's size
        session = f"{PREFIX}session:__rand_int__"
        # ARGV as the gateway sends them: the window, window size, votes, TTL, admitted, rate, period.
        mood_call = ["EVALSHA", mood, "1", session, "sad,sad,sad", "5", "3", str(TTL_MS), "1", "30", "60000"]
        record_call = ["EVALSHA", recorded, "1", session, RECOMMENDED_KEY, str(TTL_MS)]
        rates = {
            "mood_script": benchmark(port, requests, 1, *mood_call),
            "cache_get": benchmark(port, requests, 1, "GET", RECOMMENDED_KEY),
            "recommended_script": benchmark(port, requests, 1, *record_call),
        }
        version = client.info("server")["redis_version"]
        client.close()
    # One request that switches the steady emotion makes one call of each.
    per_request_us = sum(1e6 / rate for rate in rates.values())
    return {
        "redis_version": version,
        "calls_per_s": rates,
        "us_per_request": per_request_us,
        "requests_per_s": 1e6 / per_request_us,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="per gateway")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--redis-requests", type=int, default=200_000)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    gateway = gateway_cpu(args)
    redis_part = redis_rates(args.redis_requests)
    load_after = os.getloadavg()
    result = {
        "command": "python -m bench.mood_cost",
        **gateway,
        "redis": redis_part,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after},
    }
    g = result["gateways"]
    result["redis_minus_in_process_cpu_ms"] = (
        g["redis"]["cpu_ms_per_request"] - g["in process"]["cpu_ms_per_request"]
    )
    report.write(
        REPORTS,
        "mood_cost",
        result,
        title="What a viewer in on-device mode costs the servers: POST /api/mood",
        command="python -m bench.mood_cost",
        notes=[
            f"{gateway['requests_per_gateway']} requests per gateway, one at a time, in {args.rounds} "
            f"alternating rounds over {args.sessions} sessions; each request a three-frame window that "
            "switches its session's steady emotion and gets ten cached tracks (the path every request of "
            "the page takes); the gateway process's own CPU time from /proc, "
            f"{TICK_MS:.0f} ms ticks, on cores shared with other work.",
            f"Redis {redis_part['redis_version']}: a private, memory-only server; redis-benchmark with 50 "
            "connections on the same machine, one call at a time (a floor for a dedicated core). Such a "
            "request makes one call of each of calls_per_s; requests_per_s is what one Redis core serves "
            "of them.",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the gateway's shared viewer state costs Redis: memory per session and script calls per second.

    .venv/bin/python -m bench.redis_state [--sessions 100000]

Runs on a private, memory-only redis-server (a free port). Memory: used_memory before and after
--sessions sessions have each seen a window of frames and a recommendation, written by the gateway's
own Lua scripts (services/gateway/state.py). Throughput: redis-benchmark calling the per-frame script
(EVALSHA, on random sessions) and, for scale, plain GETs, without and with pipelining. redis-benchmark
and redis-server share this machine's cores, so the figures are a floor for a dedicated Redis core.
Writes reports/redis_state.json and .md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess

import redis

from bench import report
from bench.report import REPORTS
from samples.servers import redis_server
from services.gateway.state import OBSERVE_LUA, RECOMMENDED_LUA

PREFIX = "moodtunes:gateway:"
FRAMES = ("happy", "happy", "sad", "neutral", "happy")
# What the gateway records as "recommended": a cache key for emotion, strategy, limit, seed, exclusions.
RECOMMENDED_KEY = f"{PREFIX}recommend:happy:match:10:-:-"
TTL_MS = 900_000


def session_memory(client: redis.Redis, sessions: int) -> dict[str, float]:
    observe, recommended = client.register_script(OBSERVE_LUA), client.register_script(RECOMMENDED_LUA)
    before = client.info("memory")["used_memory"]
    batch = 1000
    for start in range(0, sessions, batch):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + batch, sessions)):
            key = f"{PREFIX}session:{i:032x}"  # about as long as the page's session ids (UUIDs)
            for emotion in FRAMES:
                observe(keys=[key], args=[emotion, 5, 3, TTL_MS, "1"], client=pipe)
            recommended(keys=[key], args=[RECOMMENDED_KEY, TTL_MS], client=pipe)
        pipe.execute()
    after = client.info("memory")["used_memory"]
    return {"sessions": sessions, "bytes_per_session": (after - before) / sessions, "used_mb": after / 2**20}


def benchmark(port: int, requests: int, pipeline: int, *command: str) -> float:
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(requests), "-P", str(pipeline), "-q"]
        + ["-r", "100000", *command],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return float(re.findall(r"([\d.]+) requests per second", out)[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with redis_server() as (url, _):
        client = redis.Redis.from_url(url)
        port = client.connection_pool.connection_kwargs["port"]
        memory = session_memory(client, args.sessions)
        sha = client.script_load(OBSERVE_LUA)
        client.set("bench:get", "x" * 2000)  # about a cached /recommend answer's size
        frame = ["EVALSHA", sha, "1", f"{PREFIX}session:__rand_int__", "sad", "5", "3", str(TTL_MS), "1"]
        rates = {
            "observe": benchmark(port, args.requests, 1, *frame),
            "observe_pipelined_16": benchmark(port, args.requests, 16, *frame),
            "get": benchmark(port, args.requests, 1, "GET", "bench:get"),
            "get_pipelined_16": benchmark(port, args.requests, 16, "GET", "bench:get"),
        }
        version = client.info("server")["redis_version"]
        client.close()
    result = {
        "command": "python -m bench.redis_state",
        "redis_version": version,
        "memory": memory,
        "requests_per_s": rates,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
    }
    report.write(
        REPORTS,
        "redis_state",
        result,
        title="Redis cost of the gateway's shared viewer state",
        command="python -m bench.redis_state",
        notes=[
            "A private redis-server, memory only; redis-benchmark with 50 connections on the same machine: "
            "a floor for a dedicated core. memory: bytes per session, each session "
            f"{len(FRAMES)} frames and a recommendation, written by the gateway's scripts. requests_per_s: "
            "observe = the per-frame script (EVALSHA, random sessions), get = GET of a 2 kB value (a cached "
            "/recommend answer); _pipelined_16: 16 deep.",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Memory and load shedding under more clients than the machine can serve: the three services as
`python -m services` runs them, idle, then 24 and then 120 clients sending real frames to the gateway's
POST /analyze for a fixed time each. Each client sends one frame after another on its own keep-alive
connection, and after a 503 waits as long as its Retry-After says (as the page does). Reported per phase:
the emotion service's resident memory (sampled every half second: the highest, and at the end), frames
answered (200) and their latency percentiles, frames shed (503 with Retry-After) and how fast, anything
else (errors), and the CPU the clients, the gateway and the emotion service used.

The clients are wrk's (a C load generator, Debian's `wrk`; bench/overload.lua is its script), one
connection per wrk thread, so that they take little of the cores the services need and time each request
as the client sees it. A last phase plays the 120 clients from one Python process (httpx, asyncio)
instead, side by side, since such a client is itself a bottleneck at that count.

    python -m bench.overload [--duration 60] [--out reports/]   (part of make bench)
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.client
import json
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import report
from bench.load import percentiles_ms
from bench.memory import cpu_seconds, memory_mb
from samples.images import frame_jpeg
from samples.music import recommender_env
from services import launch

PHASES = (24, 120)
PYTHON_CLIENTS = 120
WRK_SCRIPT = Path(__file__).with_name("overload.lua")
REQUEST_TIMEOUT_S = 30


class Sampler:
    """Every half second, in a thread of its own: the emotion service's resident memory, and how long
    the gateway takes to answer GET /healthz on a new connection (never shed, no body: the time the
    server takes to take a request in and answer it while the load runs)."""

    def __init__(self, pid: int, gateway: str) -> None:
        self.pid = pid
        self.gateway = urllib.parse.urlsplit(gateway).netloc
        self.peak = 0.0
        self.healthz: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, memory_mb(self.pid)["rss_mb"])
            start = time.perf_counter()
            conn = http.client.HTTPConnection(self.gateway, timeout=30)
            try:
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                self.healthz.append(time.perf_counter() - start)
            finally:
                conn.close()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def summary(
    clients: int,
    wall_s: float,
    answered: list[float],
    shed: list[float],
    other: dict[str, int],
    no_retry_after: int,
) -> dict[str, Any]:
    """One phase's row from the clients' own timings (seconds) of the answered and the shed requests."""
    total = len(answered) + len(shed) + sum(other.values())
    return {
        "clients": clients,
        "duration_s": round(wall_s, 1),
        "requests": total,
        "answered": len(answered),
        "answered_per_s": round(len(answered) / wall_s, 1),
        "answered_ms": percentiles_ms(answered),
        "shed": len(shed),
        "shed_share": round(len(shed) / total, 3) if total else 0.0,
        "shed_ms": percentiles_ms(shed),
        "shed_without_retry_after": no_retry_after,
        "errors": sum(other.values()),
        "error_kinds": other,
    }


def wrk_phase(url: str, frame: Path, clients: int, duration_s: float) -> dict[str, Any]:
    """`clients` clients played by wrk with bench/overload.lua; the row, and the CPU seconds wrk used."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("bench.overload needs wrk on the PATH (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clients.json"
        env = {**os.environ, "FRAME": str(frame), "SESSION": f"overload-{clients}", "OUT": str(out)}
        args = [wrk, "-t", str(clients), "-c", str(clients), "-d", f"{duration_s:g}s"]
        args += ["--timeout", f"{REQUEST_TIMEOUT_S}s", "-s", str(WRK_SCRIPT), url]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            args, env=env, check=True, capture_output=True, timeout=duration_s + 2 * REQUEST_TIMEOUT_S
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        seen = json.loads(out.read_text())
    row = summary(
        clients,
        seen["duration_s"],
        seen["answered_s"],
        seen["shed_s"],
        seen["other"],
        seen["shed_without_retry_after"],
    )
    row["client_cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1)
    return row


async def python_phase(url: str, frame: bytes, clients: int, duration_s: float) -> dict[str, Any]:
    """The same clients played by one Python process (httpx on asyncio): the row, and the CPU seconds
    this process used meanwhile."""
    answered: list[float] = []
    shed: list[float] = []
    other: dict[str, int] = {}
    no_retry_after = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient, idx: int, stop_at: float) -> None:
        nonlocal no_retry_after
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            try:
                resp = await http.post(
                    "/analyze",
                    params={"session": f"overload-python-{clients}-{idx}"},
                    files={"image": ("frame.jpg", frame, "image/jpeg")},
                )
            except httpx.HTTPError as exc:
                other[type(exc).__name__] = other.get(type(exc).__name__, 0) + 1
                continue
            took = time.perf_counter() - start
            if resp.status_code == 200 and resp.json().get("faces"):
                answered.append(took)
            elif resp.status_code == 503:
                shed.append(took)
                retry = resp.headers.get("retry-after", "")
                no_retry_after += not retry.isdigit()
                await asyncio.sleep(float(retry) if retry.isdigit() else 1.0)
            else:
                kind = f"HTTP {resp.status_code}"
                other[kind] = other.get(kind, 0) + 1

    cpu_before = time.process_time()
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as http:
        start = time.monotonic()
        await asyncio.gather(*(client(http, i, start + duration_s) for i in range(clients)))
        wall = time.monotonic() - start
    row = summary(clients, wall, answered, shed, other, no_retry_after)
    row["client_cpu_s"] = round(time.process_time() - cpu_before, 1)
    return row


def server_buckets(gateway_metrics: str) -> dict[str, dict[float, float]]:
    """The gateway's own latency histogram (services/common/observability.py) by route: cumulative
    counts per upper bound in seconds. Shed requests are answered before routing ("unmatched")."""
    out: dict[str, dict[float, float]] = {}
    text = httpx.get(gateway_metrics, timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "http_request_duration_seconds_bucket" and labels["service"] == "gateway":
                out.setdefault(labels["route"], {})[float(labels["le"])] = sample.value
    return out


def server_quantiles(
    before: dict[str, dict[float, float]], after: dict[str, dict[float, float]], route: str
) -> dict[str, str]:
    """p50 and p99 of the requests in between, as the histogram bucket that holds them ("<= 0.25 s")."""
    now, then = after.get(route, {}), before.get(route, {})
    counts = {le: now[le] - then.get(le, 0.0) for le in sorted(now)}
    total = counts.get(float("inf"), 0.0)
    if not total:
        return {}
    return {
        f"p{q}": f"<= {next(le for le, c in counts.items() if c >= total * q / 100):g} s" for q in (50, 99)
    }


def sheds(metrics: dict[str, str]) -> dict[str, float]:
    """Requests each service has shed so far, by service and reason (services/common/limits.SHED), from
    their metrics URLs."""
    out: dict[str, float] = {}
    for name, url in metrics.items():
        for family in text_string_to_metric_families(httpx.get(url, timeout=30).text):
            for sample in family.samples:
                if sample.name == "http_shed_total":
                    out[f"{name} {sample.labels['reason']}"] = sample.value
    return out


def measured(s: launch.Stack, pid: int, play: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One phase: the clients' row from `play`, with what was measured meanwhile on the server side."""
    before = server_buckets(s.metrics["gateway"])
    services = {name: s.metrics[name] for name in ("gateway", "emotion")}
    shed_before = sheds(services)
    cpu_before = {name: cpu_seconds(s.pids[name]) for name in services}
    start = time.monotonic()
    with Sampler(pid, s.gateway) as sampler:
        row = play()
    wall = time.monotonic() - start
    row["emotion_rss_mb"] = {"highest": sampler.peak, "end": memory_mb(pid)["rss_mb"]}
    row["healthz_ms"] = percentiles_ms(sampler.healthz)
    after = server_buckets(s.metrics["gateway"])
    row["gateway_measured"] = {
        "answered": server_quantiles(before, after, "/analyze"),
        "shed": server_quantiles(before, after, "unmatched"),
    }
    shed_after = sheds(services)
    row["shed_by"] = {
        k: int(v - shed_before.get(k, 0)) for k, v in shed_after.items() if v > shed_before.get(k, 0)
    }
    row["cpu_share"] = {
        "clients": round(row.pop("client_cpu_s") / wall, 2),
        **{name: round((cpu_seconds(s.pids[name]) - cpu_before[name]) / wall, 2) for name in cpu_before},
    }
    return row


def run(duration_s: float) -> dict[str, Any]:
    frame = frame_jpeg()
    with (
        tempfile.TemporaryDirectory() as tmp,
        launch.stack({"recommender": recommender_env(Path(tmp))}) as s,
    ):
        frame_file = Path(tmp) / "frame.jpg"
        frame_file.write_bytes(frame)
        pid = s.pids["emotion"]
        httpx.post(f"{s.gateway}/analyze", files={"image": ("f.jpg", frame, "image/jpeg")}, timeout=60)
        result: dict[str, Any] = {"idle_rss_mb": memory_mb(pid)["rss_mb"], "phases": []}
        for clients in PHASES:
            row = measured(s, pid, functools.partial(wrk_phase, s.gateway, frame_file, clients, duration_s))
            result["phases"].append({"client": "wrk", **row})
        row = measured(
            s, pid, lambda: asyncio.run(python_phase(s.gateway, frame, PYTHON_CLIENTS, duration_s))
        )
        result["phases"].append({"client": "one Python process (httpx)", **row})
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    ap.add_argument("--out", type=Path, default=report.REPORTS)
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)
    result = run(args.duration)
    load = os.getloadavg()
    result |= {
        "duration_s": args.duration,
        "machine": f"{os.cpu_count()} cores, load average at the end "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}",
    }
    result |= {"note": args.note}
    report.write(
        args.out,
        "overload",
        result,
        title="Overload: memory and load shedding",
        command=f"python -m bench.overload --duration {args.duration:g}",
        notes=[
            "Shared with other work while it ran: compare phases of one run, not runs. Clients post real "
            "frames to the gateway's /analyze, each on its own keep-alive connection; after a 503 a client "
            "waits its Retry-After. The clients are wrk's (C, one connection per thread, "
            "bench/overload.lua), timing each request from just before it is written to its answer; the "
            "last phase plays the 120 clients from one Python process (httpx) instead.",
            "gateway_measured: the same requests as the gateway itself timed them (its latency histogram, "
            "from the call of the application to its answer; the bucket that holds the percentile). "
            "cpu_share: CPU seconds per second of the phase (2.0 is both cores). shed_by: where requests "
            "were shed: the gateway's and the emotion service's HTTP limits (concurrency, body_budget), the "
            "emotion service's count of frames (frames) and its wait for a worker (frame_wait), whose 503 "
            "the gateway passes on.",
        ],
    )
    return 1 if any(p["errors"] for p in result["phases"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())

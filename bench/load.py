"""Bounded load test of the gateway's POST /analyze: N concurrent clients send 640x480 webcam-sized JPEG
frames (the emotion bench's astronaut frame) for a fixed time; reports requests/s, latency percentiles
and errors. A request counts as ok only if it is a 200 that found the face.

    python -m bench.load --url http://127.0.0.1:8000 --clients 16 --duration 60   # writes reports/load.*
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import report
from samples.images import frame_jpeg

PERCENTILES = (50, 95, 99)

# One request by client number (0..) and request number (1.., 0 for the warm-up); returns None when ok,
# else what went wrong.
Send = Callable[[httpx.AsyncClient, int, int], Awaitable[str | None]]


def percentiles_ms(latencies_s: list[float]) -> dict[str, float]:
    if not latencies_s:
        return {f"p{p}": float("nan") for p in PERCENTILES}
    values = np.percentile(np.asarray(latencies_s) * 1000, PERCENTILES)
    return {f"p{p}": round(float(v), 2) for p, v in zip(PERCENTILES, values, strict=True)}


async def closed_loop(
    url: str, send: Send, clients: int, duration_s: float, timeout_s: float = 30.0
) -> dict[str, Any]:
    """`clients` clients each send one request after another for `duration_s` seconds (after one
    warm-up request, so a cold start does not skew the numbers)."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient, idx: int, stop_at: float) -> None:
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            start = time.perf_counter()
            try:
                error = await send(http, idx, n)
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            if error is None:
                latencies.append(time.perf_counter() - start)
            else:
                errors[error] = errors.get(error, 0) + 1

    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as http:
        if (warm_up := await send(http, 0, 0)) is not None:
            raise RuntimeError(f"warm-up request failed: {warm_up}")
        start = time.monotonic()
        await asyncio.gather(*(client(http, i, start + duration_s) for i in range(clients)))
        wall = time.monotonic() - start
    return {
        "clients": clients,
        "duration_s": round(wall, 2),
        "requests": len(latencies) + sum(errors.values()),
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "requests_per_s": round(len(latencies) / wall, 2),
        "latency_ms": percentiles_ms(latencies),
    }


def analyze_sender(frame: bytes) -> Send:
    async def send(http: httpx.AsyncClient, client: int, _: int) -> str | None:
        # One session per client, like one browser tab each.
        resp = await http.post(
            "/analyze",
            params={"session": f"load-{client}"},
            files={"image": ("frame.jpg", frame, "image/jpeg")},
        )
        if resp.status_code != 200:
            return f"HTTP {resp.status_code}"
        return None if resp.json().get("faces") else "no face found"

    return send


async def run_load(url: str, clients: int = 16, duration_s: float = 60.0) -> dict[str, Any]:
    frame = frame_jpeg()
    result = await closed_loop(url, analyze_sender(frame), clients, duration_s)
    return {
        "endpoint": "POST /analyze",
        "frame": {"width": 640, "height": 480, "format": "jpeg", "bytes": len(frame)},
        **result,
    }


def write_report(result: dict[str, Any], out_dir: Path, note: str = "") -> None:
    report.write(
        out_dir,
        "load",
        {**result, "note": note},
        title="Load test: gateway POST /analyze",
        command=f"python -m bench.load --clients {result['clients']} --duration {result['duration_s']:.0f}",
        notes=["Concurrent clients, each sending 640x480 JPEG frames (one face) one after another."],
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8000", help="the gateway")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds")
    ap.add_argument("--out", type=Path, default=report.REPORTS)
    ap.add_argument("--note", default="", help="context written beside the numbers (machine, load)")
    args = ap.parse_args(argv)
    result = asyncio.run(run_load(args.url, args.clients, args.duration))
    write_report(result, args.out, args.note)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the gateway's call to the emotion service costs the gateway, per transport under httpx's API:
httpx's own (httpcore) and httpx-aiohttp's (what services/gateway/clients.py uses for frames).

    python -m bench.transports [--rounds 4] [--requests 400]

The gateway's own EmotionClient posts the bench frame (multipart, as the page sends it) to a real
emotion service with 1 and with 16 requests in flight; rounds alternate the transports so that both see
the same phases of the machine. What is counted is this process's CPU time per answered request (the
emotion service runs in its own process): the part of the gateway's CPU per frame that the transport
decides. Writes reports/transports.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import uvloop
from python_multipart.multipart import parse_options_header

from bench import report
from samples.images import frame_jpeg
from services import launch
from services.common.upload import Body
from services.gateway.clients import LIMITS, EmotionClient
from services.gateway.settings import EmotionBackend

HTTPCORE, AIOHTTP = "httpx (httpcore)", "httpx-aiohttp"
IN_FLIGHT = (1, 16)


def frame_body() -> Body:
    """The bench frame as the page posts it: multipart, encoded by httpx."""
    request = httpx.Request(
        "POST", "http://bench/", files={"image": ("frame.jpg", frame_jpeg(), "image/jpeg")}
    )
    content_type = request.headers["content-type"]
    _, options = parse_options_header(content_type)
    return Body(request.read(), content_type, options[b"boundary"])


def emotion_client(url: str, transport: str) -> EmotionClient:
    """The gateway's client as the gateway builds it (httpx-aiohttp), or with httpx's own transport."""
    client = EmotionClient(EmotionBackend(url=url, connect_timeout_s=5.0, timeout_s=30.0))
    if transport == HTTPCORE:
        client.transport = httpx.AsyncHTTPTransport(limits=LIMITS)
    return client


async def one_run(url: str, transport: str, in_flight: int, requests: int) -> dict[str, Any]:
    """`requests` POSTs, `in_flight` at a time, through a fresh client (warmed by one request each)."""
    client = emotion_client(url, transport)
    body = frame_body()
    try:
        await asyncio.gather(*(client.predict(body, None, "warm") for _ in range(in_flight)))
        left = iter(range(requests))

        async def worker() -> None:
            for i in left:
                await client.predict(body, None, f"bench-{i}")

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await client.aclose()
    return {"cpu_ms_per_request": 1000 * cpu / requests, "requests_per_s": requests / wall}


def measure(url: str, rounds: int, requests: int) -> dict[str, Any]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        str(n): {name: [] for name in (HTTPCORE, AIOHTTP)} for n in IN_FLIGHT
    }
    for _ in range(rounds):
        for n in IN_FLIGHT:
            for name in (HTTPCORE, AIOHTTP):
                runs[str(n)][name].append(uvloop.run(one_run(url, name, n, requests)))
    summary = {
        n: {
            name: round(statistics.median(r["cpu_ms_per_request"] for r in per), 3)
            for name, per in by_transport.items()
        }
        for n, by_transport in runs.items()
    }
    for medians in summary.values():
        medians["ratio"] = round(medians[HTTPCORE] / medians[AIOHTTP], 2)
    return {"rounds": rounds, "requests": requests, "runs": runs, "cpu_ms_per_request": summary}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--out", type=Path, default=report.REPORTS)
    args = ap.parse_args(argv)
    with launch.service("emotion") as url:
        result = measure(url, args.rounds, args.requests)
    command = f"python -m bench.transports --rounds {args.rounds} --requests {args.requests}"
    report.write(
        args.out,
        "transports",
        result,
        title="The gateway's call to the emotion service, per httpx transport",
        command=command,
        notes=[
            "The gateway's EmotionClient posts a 640x480 JPEG frame (multipart) to a real emotion service, "
            "`requests` a run, in rounds that alternate the transports. cpu_ms_per_request: CPU time of the "
            "calling process per answered request (ms; the emotion service's own CPU is not counted), "
            f"median of the rounds by requests in flight; ratio: {HTTPCORE}'s over {AIOHTTP}'s in the same "
            "rounds; runs: each round's.",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A short run of the load test (bench/load.py) against the running system: no errors under concurrency.
The full 60 s, 16-client run is `make bench` (reports/load.md)."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.load import run_load, write_report
from tests.integration.stack import Stack


def test_short_load_run_has_no_errors(stack: Stack, tmp_path: Path) -> None:
    # A thread of its own: the browser tests' Playwright may leave an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(asyncio.run, run_load(stack.gateway, clients=4, duration_s=5)).result()
    assert result["errors"] == 0, result["error_kinds"]
    assert result["ok"] >= 4 and result["requests_per_s"] > 0
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    write_report(result, tmp_path, note="smoke")
    assert json.loads((tmp_path / "load.json").read_text())["ok"] == result["ok"]
    assert f"- ok: {result['ok']}" in (tmp_path / "load.md").read_text()

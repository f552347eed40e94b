"""The capacity model's documented figures (docs/scaling.md): on-device mode at a million viewers needs at
least 50 times fewer server cores than server mode, at the planned requests per viewer per minute; and
the committed report is what bench.capacity computes from the committed inputs."""

from __future__ import annotations

import json

from bench import capacity
from bench.report import REPORTS

TARGET = 50  # issue 23: at least 50x fewer server cores at 1,000,000 viewers


def test_on_device_mode_needs_50_times_fewer_cores_at_a_million_viewers() -> None:
    report = json.loads((REPORTS / "capacity.json").read_text())
    server = {r["viewers"]: r["cpu_requested"] for r in report["rows"]}
    planned = report["ondevice"]["planned_per_minute"]
    (row,) = [
        r
        for r in report["ondevice"]["rows"]
        if r["viewers"] == 1_000_000 and r["requests_per_viewer_per_minute"] == planned
    ]
    assert planned == capacity.MOOD_PER_MINUTE
    assert server[1_000_000] / row["cpu_requested"] == row["fewer_cores"] >= TARGET


def test_the_on_device_rows_follow_the_measured_cost() -> None:
    report = json.loads((REPORTS / "capacity.json").read_text())
    mood = json.loads((REPORTS / "mood_cost.json").read_text())
    ondevice = report["ondevice"]
    assert ondevice["gateway_ms"] == mood["gateways"]["redis"]["cpu_ms_per_request"]
    assert ondevice["redis_requests_per_s"] == mood["redis"]["requests_per_s"]
    for row in ondevice["rows"]:
        assert row["requests_per_s"] == row["viewers"] * row["requests_per_viewer_per_minute"] / 60
        assert row["gateway_cores"] == row["requests_per_s"] * ondevice["gateway_ms"] / 1000

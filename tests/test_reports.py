"""The benchmarks' reports are rendered from their data by the one renderer (bench/report.py): every
committed report JSON with its "report" header has the Markdown that `python -m bench.report` makes of it,
and the renderer turns records into tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.report import REPORTS, render, write

RENDERED = sorted(p for p in REPORTS.rglob("*.json") if "report" in json.loads(p.read_text()))


def test_every_bench_report_is_rendered() -> None:
    names = {p.stem for p in RENDERED}
    assert {"bench", "load", "overload", "emotion_bench", "recommend_bench", "forwarding"} <= names


@pytest.mark.parametrize("path", RENDERED, ids=[str(p.relative_to(REPORTS)) for p in RENDERED])
def test_the_markdown_is_what_the_renderer_makes_of_the_json(path: Path) -> None:
    assert path.with_suffix(".md").read_text() == render(json.loads(path.read_text())), (
        f"re-render it: python -m bench.report {path.relative_to(REPORTS.parent)}"
    )


def test_records_become_tables_and_plain_values_a_list(tmp_path: Path) -> None:
    result = {
        "clients": 16,
        "runs": [
            {"round": 1, "latency_ms": {"p50": 1.25, "p99": 3.5}},
            {"round": 2, "latency_ms": {"p50": 1.5}},
        ],
        "by_service": {"gateway": {"rss_mb": 83.0}, "emotion": {"rss_mb": 209.4}},
    }
    text = write(tmp_path, "x", result, title="A bench", command="python -m bench.x", notes=["Why."])
    assert text.startswith("# A bench\n\nCommand: `python -m bench.x`.\n\nWhy.\n")
    assert "- clients: 16" in text
    assert "| # | round | latency_ms p50 | latency_ms p99 |" in text and "| 2 | 2 | 1.5 |  |" in text
    assert "| gateway | 83 |" in text and "| emotion | 209.4 |" in text
    assert json.loads((tmp_path / "x.json").read_text())["runs"] == result["runs"]
    assert (tmp_path / "x.md").read_text() == text

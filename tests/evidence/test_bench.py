"""bench/run_all.py's baseline row: the original pipeline (Haar cascade + an ONNX CNN) against ours, and
the clear note when the baseline model is absent."""

from __future__ import annotations

import json
from pathlib import Path

from bench.run_all import DEFAULT_BASELINE, baseline
from samples.images import frame_jpeg


def test_baseline_row_compares_the_original_pipeline_with_ours() -> None:
    """The committed baseline model (the prototype's architecture, models/baseline/) and its card."""
    row = baseline(frame_jpeg(), DEFAULT_BASELINE, n=3)
    assert row["original_ms_p50"] > 0 and row["ours_ms_p50"] > 0
    assert row["speedup"] == round(row["original_ms_p50"] / row["ours_ms_p50"], 2)
    assert row["ours_faces"] == 1 and row["original_faces"] >= 1  # one face in the frame
    card = json.loads(DEFAULT_BASELINE.with_name("baseline.card.json").read_text())
    assert row["original_card"] == {
        "parameters": card["architecture"]["parameters"],
        "size_mb": round(card["size_bytes"] / 1e6, 1),
        "test_single": card["metrics"]["test_single"],
    }
    assert row["ours_card"]["size_mb"] <= 10 and 0 < row["ours_card"]["test_single"] <= 1


def test_baseline_row_is_skipped_with_a_note_when_the_model_is_absent(tmp_path: Path) -> None:
    row = baseline(frame_jpeg(), tmp_path / "missing.onnx", n=3)
    assert set(row) == {"skipped"} and "missing.onnx" in row["skipped"]

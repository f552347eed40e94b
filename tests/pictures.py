"""Hypothesis strategies for real encoded pictures, with or without a face, so that property tests and
schemathesis fuzz the success path of /predict and /analyze, not only its refusals."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from hypothesis import strategies as st

from samples.images import encode, head
from services.emotion import imaging  # noqa: F401  (registers HEIF with Pillow, for encoding too)
from services.emotion.settings import EmotionSettings

# The smallest head pasted in, in the detector's input (the service scales a picture down to
# detect_side): over a few hundred random pictures every head of 50 px or more there was found and
# heads of up to 46 px were missed; below that the face is not meant to be seen.
MIN_HEAD_PX = 56
DETECT = EmotionSettings()
# Pillow's format names and the media types the services accept for them (HEIF through pillow-heif,
# registered by services.emotion.imaging).
FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
    "HEIF": "image/heic",
}


@dataclass(frozen=True)
class Picture:
    data: bytes
    media_type: str
    width: int
    height: int
    head: tuple[int, int, int, int] | None  # where the astronaut's head was pasted (x, y, w, h)


@st.composite
def pictures(draw: st.DrawFn, formats: tuple[str, ...] = tuple(FORMATS), face: bool | None = None) -> Picture:
    """A picture 16-720 px a side: a flat, noisy or gradient background, in colour or grey, and maybe
    (face=None) the astronaut's head pasted in whole, 35-90% of the picture's height and at least
    MIN_HEAD_PX in the detector's input, encoded in one of FORMATS."""
    width, height = draw(st.integers(16, 720)), draw(st.integers(16, 720))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["flat", "noise", "gradient"]))
    if kind == "flat":
        canvas: np.ndarray = np.full((height, width, 3), rng.integers(0, 256, 3), np.uint8)
    elif kind == "noise":
        canvas = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None] * rng.uniform(0, 1, 3)
        canvas = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8)
    box = None
    with_face = draw(st.booleans()) if face is None else face
    src = head()
    widest = min(0.9, width * src.shape[0] / (src.shape[1] * height))  # the head must fit in whole
    scale = min(1.0, DETECT.detect.side(width, height) / max(width, height))
    lowest = max(0.35, MIN_HEAD_PX / scale / height)
    if with_face and widest >= lowest:
        h = max(MIN_HEAD_PX, round(height * draw(st.floats(lowest, widest))))
        w = min(width, round(src.shape[1] * h / src.shape[0]))
        x, y = draw(st.integers(0, width - w)), draw(st.integers(0, height - h))
        canvas = canvas.copy()
        canvas[y : y + h, x : x + w] = cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA)
        box = (x, y, w, h)
    if draw(st.booleans()):
        canvas = cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)
    fmt = draw(st.sampled_from(formats))
    options = {"quality": draw(st.integers(40, 95))} if fmt != "PNG" else {}
    return Picture(encode(canvas, fmt, **options), FORMATS[fmt], width, height, box)


def encoded(fmt: str) -> st.SearchStrategy[bytes]:
    """Pictures in one format: the body of a request that declares its media type."""
    return pictures(formats=(fmt,)).map(lambda p: p.data)

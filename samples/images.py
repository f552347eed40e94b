"""Face pictures from scikit-image's public-domain astronaut photo (Eileen Collins)."""

from __future__ import annotations

import functools
import io

import cv2
import numpy as np
from PIL import Image
from skimage import data

# Her head in the 512x512 photo, with room around the face.
HEAD = (slice(20, 240), slice(140, 330))


@functools.cache
def astronaut() -> np.ndarray:
    """The 512x512 RGB photo (read-only: copy before drawing on it)."""
    rgb = data.astronaut()
    rgb.flags.writeable = False
    return rgb


def head() -> np.ndarray:
    return astronaut()[HEAD]


def frame_640x480() -> np.ndarray:
    """A webcam-sized frame with one face: the photo's top 384 rows, widened to 4:3."""
    return cv2.resize(astronaut()[:384], (640, 480), interpolation=cv2.INTER_AREA)


def encode(rgb: np.ndarray, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def astronaut_jpeg(quality: int = 90) -> bytes:
    """The whole photo (512x512, one face) as JPEG."""
    return encode(astronaut(), quality=quality)


def frame_jpeg(quality: int = 85) -> bytes:
    return encode(frame_640x480(), quality=quality)

"""Image decoding with the service's input limits, and FER2013-style face crops.

Uploads are decoded in memory only: nothing is written to disk or logged.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from services.common.contracts import Box
from services.common.errors import InvalidRequest, TooLarge, Unsupported, too_large
from services.common.upload import ACCEPTED

# Phones save HEIC (iPhones) and AVIF; Pillow decodes AVIF itself, pillow-heif (libheif) adds HEIC/HEIF.
pillow_heif.register_heif_opener()

# Pillow format names of what we accept (services/common/upload.py names the media types that announce
# them). MPO is the JPEG that many phones write (a JPEG with further frames appended): its first frame is
# the photo.
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "HEIF", "AVIF"})
JPEG_FORMATS = frozenset({"JPEG", "MPO"})
# Pillow's modes for more than 8 bits a sample (16-bit grey PNG): scaled to 8 bits, since converting
# them to "L" clips every value above 255 to white.
WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int
    max_pixels: int


def decode(data: bytes, limits: Limits, grey: bool = False) -> np.ndarray:
    """Decodes JPEG/PNG/WebP/HEIC/AVIF bytes to an RGB uint8 array [H, W, 3] (grey: [H, W]), upright per EXIF
    orientation.

    The format is judged by the bytes (Pillow's sniffing), never by a declared type. The pixel count
    comes from the header, read before any pixel is decoded, so a small file that claims a huge
    image is refused cheaply.
    """
    if not data:
        raise InvalidRequest(f"empty body: send a {ACCEPTED} image")
    if len(data) > limits.max_upload_bytes:
        raise too_large(limits.max_upload_bytes)
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below decides; Pillow's bomb warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"image has too many pixels: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidRequest(f"not an image: the bytes are not a decodable {ACCEPTED}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidRequest(f"undecodable image header: {exc}") from exc
    with img:
        if img.format not in SUPPORTED_FORMATS:
            raise Unsupported(f"unsupported image format {img.format}: send {ACCEPTED}")
        width, height = img.size
        if width * height > limits.max_pixels:
            raise TooLarge(f"image has too many pixels: {width}x{height} > {limits.max_pixels} pixels")
        mode = "L" if grey else "RGB"
        if grey and img.format in JPEG_FORMATS:
            # A JPEG stores luma apart from colour: decoding only that plane skips the chroma
            # upsampling and colour conversion, about half the decode time of a 640x480 frame.
            img.draft("L", img.size)
        try:
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            if img.mode in WIDE_MODES:
                return _from_wide(np.asarray(img), grey)
            # np.asarray on an image already in the mode avoids the copy that convert() would make.
            return np.asarray(img if img.mode == mode else img.convert(mode))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            # Pillow raises OSError("image file is truncated ...") for cut-off files.
            raise InvalidRequest(f"undecodable or truncated image: {exc}") from exc


def _from_wide(samples: np.ndarray, grey: bool) -> np.ndarray:
    """16-bit grey samples scaled to 8 bits (65535 -> 255)."""
    eight = (np.clip(samples, 0, 65535) // 257).astype(np.uint8)
    return eight if grey else cv2.cvtColor(eight, cv2.COLOR_GRAY2RGB)


def square_crop_box(box: Box, margin: float, shift_y: float) -> tuple[int, int, int]:
    """The square (x0, y0, side) around a face box that frames it like FER2013."""
    x, y, w, h = box.x, box.y, box.w, box.h
    side = max(1, round(max(w, h) * margin))
    cx = x + w / 2
    cy = y + h / 2 + shift_y * h
    return round(cx - side / 2), round(cy - side / 2), side


def face_crop(
    grey: np.ndarray,
    box: Box,
    size: tuple[int, int],
    margin: float,
    shift_y: float,
    roll: float = 0.0,
) -> np.ndarray:
    """A FER2013-like crop: square around the box, edge-replicated where it leaves the frame,
    resized with INTER_AREA to size (H, W). roll (degrees, Detection.roll): the picture is first turned
    about the square's centre so the eyes are level, as FER2013's faces mostly are.
    Returns float32 [H, W], grey 0..255."""
    x0, y0, side = square_crop_box(box, margin, shift_y)
    patch: np.ndarray
    if roll:
        centre = (x0 + side / 2, y0 + side / 2)
        turn = cv2.getRotationMatrix2D(centre, roll, 1.0)
        turn[:, 2] += np.array([side / 2 - centre[0], side / 2 - centre[1]])
        patch = cv2.warpAffine(
            grey, turn, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    else:
        patch = _square(grey, x0, y0, side)
    h, w = size
    interp = cv2.INTER_AREA if side >= max(h, w) else cv2.INTER_LINEAR
    return cv2.resize(patch, (w, h), interpolation=interp).astype(np.float32)


def _square(grey: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    ih, iw = grey.shape
    # Only the part of the square inside the image is copied; the border fills the rest.
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + side, iw), min(y0 + side, ih)
    if cx1 <= cx0 or cy1 <= cy0:
        return np.zeros((side, side), np.uint8)
    return cv2.copyMakeBorder(
        grey[cy0:cy1, cx0:cx1], cy0 - y0, y0 + side - cy1, cx0 - x0, x0 + side - cx1, cv2.BORDER_REPLICATE
    )


def to_grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)

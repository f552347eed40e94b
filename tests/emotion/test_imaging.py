"""Crop geometry: square, FER-like framing, edges replicated, model size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from samples.images import encode
from services.common.contracts import Box
from services.emotion.detector import CenterFaceDetector
from services.emotion.imaging import Limits, decode, face_crop, square_crop_box


def test_square_crop_box_grows_around_the_centre() -> None:
    assert square_crop_box(Box(x=100, y=100, w=40, h=60), 1.0, 0.0) == (90, 100, 60)
    x0, y0, side = square_crop_box(Box(x=100, y=100, w=40, h=60), 1.5, 0.0)
    assert side == 90 and (x0 + side / 2, y0 + side / 2) == (120, 130)
    _, y_shifted, _ = square_crop_box(Box(x=100, y=100, w=40, h=60), 1.0, 0.1)
    assert y_shifted == 106


def test_face_crop_is_model_sized_float_grey() -> None:
    grey = np.arange(200 * 300, dtype=np.uint32).reshape(200, 300).astype(np.uint8)
    crop = face_crop(grey, Box(x=50, y=40, w=100, h=120), (48, 48), 1.2, 0.0)
    assert crop.shape == (48, 48) and crop.dtype == np.float32
    assert crop.min() >= 0 and crop.max() <= 255


def test_face_crop_at_the_edge_replicates_pixels() -> None:
    grey = np.full((100, 100), 200, np.uint8)
    crop = face_crop(grey, Box(x=0, y=0, w=50, h=50), (48, 48), 2.0, 0.0)
    # Half the square lies outside the image: replicated, not black.
    assert crop.min() == 200


def test_crop_keeps_the_content_of_the_box() -> None:
    grey = np.zeros((480, 640), np.uint8)
    grey[100:200, 300:400] = 255
    crop = face_crop(grey, Box(x=300, y=100, w=100, h=100), (48, 48), 1.0, 0.0)
    assert crop.mean() == 255


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_grey_decode_is_the_luma_of_the_colour_decode(frame_640x480: np.ndarray, fmt: str) -> None:
    body = encode(frame_640x480, fmt)
    limits = Limits(1 << 23, 1 << 24)
    grey = decode(body, limits, grey=True)
    rgb = decode(body, limits)
    assert grey.shape == rgb.shape[:2] and grey.dtype == np.uint8
    # A JPEG's own luma plane vs luma computed from its decoded colour: equal up to rounding.
    assert np.abs(grey.astype(int) - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).mean() < 1.0


def test_grey_detector_finds_what_the_colour_graph_finds_in_the_grey_picture(
    frame_640x480: np.ndarray,
) -> None:
    # The grey graph folds the first convolution's three input channels into one.
    grey = cv2.cvtColor(frame_640x480, cv2.COLOR_RGB2GRAY)
    mono, colour = CenterFaceDetector(max_side=320), CenterFaceDetector(max_side=320, grey=False)
    found, expected = mono(grey), colour(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB))
    # Summing the kernels reorders float additions: scores agree to rounding, not bit for bit, and
    # a box edge computed from them may land one pixel over.
    assert found and len(found) == len(expected)
    for got, want in zip(found, expected, strict=True):
        assert got.score == pytest.approx(want.score, abs=1e-4)
        assert max(abs(getattr(got.box, k) - getattr(want.box, k)) for k in "xywh") <= 1
    assert mono.blob(grey, max_side=160).shape == (1, 1, 128, 160)
    with pytest.raises(ValueError, match="grey"):
        mono(frame_640x480)


def _dot_rows(crop: np.ndarray) -> tuple[float, float]:
    """The centre rows of the bright dot in the left and in the right half of a crop."""
    half = crop.shape[1] // 2
    rows = [np.nonzero(part > 128)[0].mean() for part in (crop[:, :half], crop[:, half:])]
    return rows[0], rows[1]


def test_face_crop_with_the_roll_levels_the_eyes() -> None:
    grey = np.zeros((200, 200), np.uint8)
    cv2.circle(grey, (70, 90), 6, 255, -1)  # image-left "eye"
    cv2.circle(grey, (130, 110), 6, 255, -1)  # the other, lower: the head rolled
    roll = float(np.degrees(np.arctan2(110 - 90, 130 - 70)))
    left, right = _dot_rows(face_crop(grey, Box(x=50, y=50, w=100, h=100), (48, 48), 1.0, 0.0))
    assert right - left > 5  # unaligned: the eyes stay tilted
    left, right = _dot_rows(face_crop(grey, Box(x=50, y=50, w=100, h=100), (48, 48), 1.0, 0.0, roll))
    assert abs(right - left) < 1.0


@pytest.mark.parametrize("turn", [-20.0, 20.0])
def test_detector_measures_the_roll_of_a_turned_face(turn: float) -> None:
    from skimage import data as skdata

    grey = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2GRAY)
    detector = CenterFaceDetector(max_side=512)
    upright = detector(grey)[0]
    centre = (upright.box.x + upright.box.w / 2, upright.box.y + upright.box.h / 2)
    # OpenCV turns counter-clockwise for a positive angle: the image-right eye rises, the roll falls.
    turned = cv2.warpAffine(grey, cv2.getRotationMatrix2D(centre, turn, 1.0), grey.shape[::-1])
    found = detector(turned)[0]
    assert found.roll == pytest.approx(upright.roll - turn, abs=6.0)

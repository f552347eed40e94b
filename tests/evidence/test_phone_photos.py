"""Photos as phones save them, built here from the astronaut photo: each variant returns the same face
as the plain JPEG, through the emotion service and the gateway (real processes); formats we cannot read
get a 415 that names what is accepted."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from tests.integration.stack import Stack

ASTRONAUT = Image.fromarray(skdata.astronaut())


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def grey16(image: Image.Image) -> Image.Image:
    """16-bit grey: most samples are above 255, which a plain conversion to 8 bits clips to white."""
    return Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257)


VARIANTS: dict[str, Callable[[], bytes]] = {
    # Many phones write MPO: the photo, then further frames (depth, a preview) appended.
    "MPO": lambda: encoded(ASTRONAUT, "MPO", save_all=True, append_images=[ASTRONAUT.resize((128, 128))]),
    "progressive JPEG": lambda: encoded(ASTRONAUT, "JPEG", progressive=True),
    "CMYK JPEG": lambda: encoded(ASTRONAUT.convert("CMYK"), "JPEG"),
    "16-bit grey PNG": lambda: encoded(grey16(ASTRONAUT), "PNG"),
    "HEIC": lambda: encoded(ASTRONAUT, "HEIF"),
    "AVIF": lambda: encoded(ASTRONAUT, "AVIF"),
}


@pytest.fixture(scope="module")
def reference_box(stack: Stack) -> dict[str, int]:
    resp = httpx.post(
        f"{stack.emotion}/predict", files={"image": ("a.jpg", encoded(ASTRONAUT, "JPEG"))}, timeout=30
    )
    faces = resp.json()["faces"]
    assert len(faces) == 1
    return faces[0]["box"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("service", ["emotion", "gateway"])
def test_a_phone_photo_returns_its_face(
    stack: Stack, reference_box: dict[str, int], service: str, variant: str
) -> None:
    body = VARIANTS[variant]()
    resp = httpx.post(f"{getattr(stack, service)}/predict", files={"image": ("photo", body)}, timeout=30)
    assert resp.status_code == 200, resp.text
    faces = resp.json()["faces"]
    assert len(faces) == 1, faces
    box = faces[0]["box"]
    assert all(abs(box[k] - reference_box[k]) <= 8 for k in "xywh"), (box, reference_box)


@pytest.mark.parametrize(("media", "fmt"), [("image/heic", "HEIF"), ("image/avif", "AVIF")])
def test_a_raw_heic_or_avif_body_is_accepted(stack: Stack, media: str, fmt: str) -> None:
    resp = httpx.post(
        f"{stack.gateway}/predict",
        content=encoded(ASTRONAUT, fmt),
        headers={"Content-Type": media},
        timeout=30,
    )
    assert resp.status_code == 200 and len(resp.json()["faces"]) == 1, resp.text


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_get_a_415_naming_what_is_accepted(stack: Stack, fmt: str) -> None:
    resp = httpx.post(
        f"{stack.gateway}/predict", files={"image": ("photo", encoded(ASTRONAUT, fmt))}, timeout=30
    )
    assert resp.status_code == 415, resp.text
    detail = resp.json()["detail"]
    assert all(name in detail for name in ("JPEG", "PNG", "WebP", "HEIC", "AVIF")), detail

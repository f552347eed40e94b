"""Every kind of bad upload gets a clear 4xx JSON {"detail": ...}, never a 500."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from samples.images import encode
from services.emotion.app import create_app
from services.emotion.pipeline import EmotionPipeline
from tests.fixtures import scrape


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims width x height pixels: a decompression-bomb stand-in."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def assert_error(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    for word in words:
        assert word in detail.lower()


def raw(client: TestClient, body: bytes, ctype: str | None = "image/jpeg"):
    headers = {"Content-Type": ctype} if ctype else {}
    return client.post("/predict", content=body, headers=headers)


def test_empty_body(client: TestClient) -> None:
    assert_error(raw(client, b""), 422, "empty")
    assert_error(raw(client, b"", None), 422, "empty")


def test_empty_multipart_field(client: TestClient) -> None:
    r = client.post("/predict", files={"image": ("a.jpg", b"", "image/jpeg")})
    assert_error(r, 422, "empty")


def test_multipart_without_image_field(client: TestClient, face_jpeg: bytes) -> None:
    r = client.post("/predict", files={"photo": ("a.jpg", face_jpeg, "image/jpeg")})
    assert_error(r, 422, "image")


def test_malformed_multipart(client: TestClient) -> None:
    r = raw(client, b"--x\r\nnot a header line\r\n\r\nzz", "multipart/form-data; boundary=x")
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/octet-stream", "image/gif"])
def test_raw_body_needs_an_image_content_type(
    client: TestClient, face_jpeg: bytes, ctype: str | None
) -> None:
    assert_error(raw(client, face_jpeg, ctype), 415, "content-type")


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_image_formats_are_unsupported(client: TestClient, frame_640x480: np.ndarray, fmt: str) -> None:
    body = encode(frame_640x480, fmt)
    assert_error(raw(client, body, "image/jpeg"), 415, fmt.lower())
    r = client.post("/predict", files={"image": ("a.jpg", body, "image/jpeg")})
    assert_error(r, 415, fmt.lower())


@pytest.mark.parametrize("body", [b"hello, world", b"\xff\xd8\xff" + b"\0" * 200, bytes(range(256)) * 4])
def test_not_an_image(client: TestClient, body: bytes) -> None:
    assert_error(raw(client, body), 422)
    assert_error(client.post("/predict", files={"image": ("a.jpg", body, "image/jpeg")}), 422)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated(client: TestClient, frame_640x480: np.ndarray, fmt: str) -> None:
    full = encode(frame_640x480, fmt)
    r = raw(client, full[: len(full) // 2], f"image/{fmt.lower()}")
    assert_error(r, 422)


def test_corrupt_png_crc(client: TestClient, frame_640x480: np.ndarray) -> None:
    png = bytearray(encode(frame_640x480, "PNG"))
    png[len(png) // 2] ^= 0xFF
    assert_error(raw(client, bytes(png), "image/png"), 422)


def test_upload_over_the_byte_limit(client: TestClient, pipeline: EmotionPipeline) -> None:
    limit = pipeline.settings.max_upload_bytes
    too_big = b"\xff\xd8\xff" + b"\0" * limit
    assert_error(raw(client, too_big), 413, "too large")
    assert_error(client.post("/predict", files={"image": ("a.jpg", too_big, "image/jpeg")}), 413, "too large")


@pytest.mark.parametrize("size", [(30_000, 30_000), (6_000, 5_000)])
def test_too_many_pixels_is_refused_from_the_header(client: TestClient, size: tuple[int, int]) -> None:
    """30000x30000 trips Pillow's own bomb guard, 6000x5000 only ours (25 MP by default); neither
    file holds the pixels it claims, so only a header check can answer 413."""
    body = png_header_only(*size)
    assert len(body) < 200
    assert_error(raw(client, body, "image/png"), 413, "pixels")


def test_real_bomb_png(client: TestClient) -> None:
    buf = io.BytesIO()
    Image.new("L", (6000, 5000)).save(buf, format="PNG")
    assert len(buf.getvalue()) < 100_000
    assert_error(raw(client, buf.getvalue(), "image/png"), 413, "pixels")


def test_limits_come_from_settings(monkeypatch: pytest.MonkeyPatch, frame_640x480: np.ndarray) -> None:
    monkeypatch.setenv("EMOTION_MAX_UPLOAD_BYTES", "2000")
    monkeypatch.setenv("EMOTION_MAX_PIXELS", str(100 * 100))
    with TestClient(create_app()) as small:
        assert_error(raw(small, encode(frame_640x480)), 413, "2000 bytes")
        ok_bytes = encode(np.zeros((120, 100, 3), np.uint8), "PNG")
        assert len(ok_bytes) < 2000
        assert_error(raw(small, ok_bytes, "image/png"), 413, "100x120")
        assert raw(small, encode(np.zeros((100, 100, 3), np.uint8), "PNG"), "image/png").status_code == 200


def test_rejections_are_counted(client: TestClient) -> None:
    raw(client, b"", "image/png")
    line = 'http_requests_total{method="POST",route="/predict",service="emotion",status="422"}'
    assert line in scrape()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=2048),
    ctype=st.sampled_from(
        ["image/jpeg", "image/png", "image/webp", "text/plain", "multipart/form-data; boundary=b", ""]
    ),
)
def test_random_bytes_never_crash(client: TestClient, body: bytes, ctype: str) -> None:
    r = raw(client, body, ctype or None)
    assert r.status_code in {413, 415, 422}, r.text
    assert r.json()["detail"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=1, max_value=4000), flip=st.integers(min_value=0, max_value=4000))
def test_damaged_jpegs_never_crash(client: TestClient, face_jpeg: bytes, cut: int, flip: int) -> None:
    damaged = bytearray(face_jpeg[:cut])
    damaged[flip % len(damaged)] ^= 0x55
    r = raw(client, bytes(damaged))
    assert r.status_code in {200, 415, 422}, r.text

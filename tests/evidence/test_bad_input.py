"""Bad input against every public endpoint of the running system (real processes): each answer is a 4xx
with a JSON {"detail": ...}, never a 5xx, and the service stays healthy afterwards."""

from __future__ import annotations

import http.client
import io
import json
import struct
import urllib.parse
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from PIL import Image

from samples.images import astronaut_jpeg
from services.common.contracts import EMOTIONS
from services.common.upload import ACCEPTED, SUPPORTED_MEDIA_TYPES
from tests.integration.stack import Stack

JPEG = astronaut_jpeg()
MAX_UPLOAD = 8 * 1024 * 1024  # the services' default limit
LONG = 60_000  # a long query the HTTP parser still accepts, so the application must answer it
TOO_LONG = 100_000  # past the server's limit on request line and headers (64 KB): refused before any app code


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header for a huge image, with a few bytes of pixel data (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def one_pixel_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (128, 64, 32)).save(buf, "PNG")
    return buf.getvalue()


def upload(data: bytes, name: str = "image", mime: str = "image/jpeg") -> dict[str, Any]:
    return {"files": {name: ("upload.jpg", data, mime)}}


def raw(data: bytes, content_type: str | None) -> dict[str, Any]:
    return {"content": data, "headers": {"Content-Type": content_type} if content_type else {}}


# The lists of formats come from the service (they grow); the rest of each message is pinned here.
EMPTY = f"empty body: send a {ACCEPTED} image"
NOT_IMAGE = f"not an image: the bytes are not a decodable {ACCEPTED}"
MEDIA = (
    f"send one of {', '.join(sorted(SUPPORTED_MEDIA_TYPES))}, or multipart/form-data with an 'image' field"
)
TOO_LARGE = f"upload too large: the limit is {MAX_UPLOAD} bytes"
NOT_BOOL = "detect: Input should be a valid boolean, unable to interpret input"
EMOTION = "emotion: Input should be " + ", ".join(f"'{e}'" for e in EMOTIONS[:-1]) + f" or '{EMOTIONS[-1]}'"
STRATEGY = "strategy: Input should be 'match' or 'lift'"
EXCLUDE = "exclude: 'not-a-track' is not a 22-character Spotify track id"
LIMIT = {
    "0": "limit: Input should be greater than or equal to 1",
    "-1": "limit: Input should be greater than or equal to 1",
    "1000": "limit: Input should be less than or equal to 50",
    "abc": "limit: Input should be a valid integer, unable to parse string as an integer",
}


@dataclass(frozen=True)
class Case:
    name: str
    detail: str  # the whole message, or its start when it ends with "..." (the rest comes from a library)
    query: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    status: int = 422


IMAGE_CASES = [
    Case("empty multipart field", EMPTY, request=upload(b"")),
    Case("empty raw body", EMPTY, request=raw(b"", "image/jpeg")),
    Case(
        "multipart without an image field",
        "multipart body has no 'image' field",
        request=upload(JPEG, "photo"),
    ),
    Case("bytes that are not an image", NOT_IMAGE, request=upload(b"this is not an image\n" * 50)),
    Case("text declared as JPEG", NOT_IMAGE, request=raw(b"GIF89a? no, plain text", "image/jpeg")),
    Case("truncated JPEG", "undecodable or truncated image: ...", request=upload(JPEG[: len(JPEG) // 2])),
    Case(
        "PNG header claiming 30000x30000 pixels",
        "image has too many pixels: ...",
        request=upload(png_claiming(30000, 30000), mime="image/png"),
        status=413,
    ),
    Case(
        "wrong Content-Type",
        f"unsupported Content-Type text/plain: {MEDIA}",
        request=raw(JPEG, "text/plain"),
        status=415,
    ),
    Case(
        "missing Content-Type",
        f"unsupported Content-Type (none): {MEDIA}",
        request=raw(JPEG, None),
        status=415,
    ),
    Case("oversized multipart upload", TOO_LARGE, request=upload(b"\xff" * (MAX_UPLOAD + 1)), status=413),
    Case(
        "oversized raw upload", TOO_LARGE, request=raw(b"\xff" * (MAX_UPLOAD + 1), "image/jpeg"), status=413
    ),
    Case("detect=abc", NOT_BOOL, query="detect=abc", request=upload(JPEG)),
    Case("non-UTF-8 query", NOT_BOOL, query="detect=%ff%fe", request=upload(JPEG)),
    Case("60 kB query", NOT_BOOL, query="detect=" + "a" * LONG, request=upload(JPEG)),
]
ANALYZE_CASES = [
    *(Case(f"limit={v}", LIMIT[v], query=f"limit={v}", request=upload(JPEG)) for v in LIMIT),
    Case("unknown strategy", STRATEGY, query="strategy=sideways", request=upload(JPEG)),
    Case("exclude that is not track ids", EXCLUDE, query="exclude=not-a-track", request=upload(JPEG)),
]
RECOMMEND_CASES = [
    Case("unknown emotion", EMOTION, query="emotion=bored"),
    Case("missing emotion", "emotion: Field required", query="limit=5"),
    *(Case(f"limit={v}", LIMIT[v], query=f"emotion=happy&limit={v}") for v in LIMIT),
    Case("unknown strategy", STRATEGY, query="emotion=happy&strategy=sideways"),
    Case("exclude that is not track ids", EXCLUDE, query="emotion=happy&exclude=not-a-track"),
    Case("non-UTF-8 query", EMOTION, query="emotion=%ff%fe"),
    Case("60 kB query", EMOTION, query="emotion=" + "a" * LONG),
    # A seed is an unsigned 32-bit integer (numpy's generators take no more).
    Case("negative seed", "seed: Input should be greater than or equal to 0", query="emotion=happy&seed=-1"),
    Case(
        "seed beyond 32 bits",
        f"seed: Input should be less than or equal to {2**32 - 1}",
        query=f"emotion=happy&seed={2**70}",
    ),
]


def mood(
    body: Any, content_type: str = "application/json", session: str | None = "evidence"
) -> dict[str, Any]:
    """A POST /api/mood request: `body` as JSON (bytes as they are)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type} | ({"X-Session-ID": session} if session else {})
    return {"content": content, "headers": headers}


SAD = [0.05, 0.05, 0.05, 0.05, 0.7, 0.05, 0.05]
FINITE = "frames.0.faces.0.0: Input should be a finite number"
MOOD_CASES = [
    Case(
        "six probabilities",
        "frames.0.faces.0: List should have at least 7 items after validation, not 6",
        request=mood({"frames": [{"faces": [SAD[:6]]}]}),
    ),
    Case(
        "probabilities summing to 0.5",
        "frames.0.faces.0: Value error, probabilities sum to 0.5, not 1 (within 0.01)",
        request=mood({"frames": [{"faces": [[p / 2 for p in SAD]]}]}),
    ),
    Case("NaN", FINITE, request=mood(b'{"frames": [{"faces": [[NaN, 0, 0, 0, 1, 0, 0]]}]}')),
    Case("Infinity", FINITE, request=mood(b'{"frames": [{"faces": [[Infinity, 0, 0, 0, 1, 0, 0]]}]}')),
    Case("1e309", FINITE, request=mood(b'{"frames": [{"faces": [[1e309, 0, 0, 0, 1, 0, 0]]}]}')),
    Case(
        "too many faces",
        "frames.0.faces: List should have at most 20 items after validation, not 21",
        request=mood({"frames": [{"faces": [SAD] * 21}]}),
    ),
    Case(
        "more frames than the window",
        "frames: at most 5 (the steadiness window of GET /api/emotions), got 6",
        request=mood({"frames": [{"faces": [SAD]}] * 6}),
    ),
    Case(
        "a bare label",
        "frames: Field required; stable_emotion: Extra inputs are not permitted",
        request=mood({"stable_emotion": "happy"}),
    ),
    Case(
        "no session",
        "session: send an X-Session-ID header or a session parameter",
        request=mood({"frames": [{"faces": [SAD]}]}, session=None),
    ),
    Case(
        "an image",
        "unsupported Content-Type image/jpeg: send application/json",
        request=mood(JPEG, "image/jpeg"),
        status=415,
    ),
    Case(
        "oversized body",
        "body too large: the limit is 16384 bytes",
        request=mood({"frames": [{"faces": [SAD]}], "pad": "x" * 20_000}),
        status=413,
    ),
    Case("deep nesting", "...", request=mood(b"[" * 5000 + b"]" * 5000), status=400),
    *(
        Case(f"limit={v}", LIMIT[v], query=f"limit={v}", request=mood({"frames": [{"faces": [SAD]}]}))
        for v in LIMIT
    ),
]
# The gateway serves the frontend from "/", so a GET on a POST-only API path falls through to it (404).
WRONG_METHOD = [
    ("emotion", "GET", "/predict", Case("wrong method", "Method Not Allowed", status=405)),
    ("gateway", "GET", "/predict", Case("wrong method", "Not Found", status=404)),
    ("gateway", "GET", "/analyze", Case("wrong method", "Not Found", status=404)),
    ("gateway", "GET", "/api/mood", Case("wrong method", "Not Found", status=404)),
    ("recommender", "POST", "/recommend", Case("wrong method", "Method Not Allowed", status=405)),
    ("gateway", "POST", "/recommend", Case("wrong method", "Method Not Allowed", status=405)),
]
ALL_ENDPOINTS = [
    *(("emotion", m, p) for m, p in (("POST", "/predict"), ("GET", "/healthz"), ("GET", "/readyz"))),
    *(("recommender", m, p) for m, p in (("GET", "/recommend"), ("GET", "/healthz"))),
    *(
        ("gateway", m, p)
        for m, p in (
            ("POST", "/predict"),
            ("POST", "/analyze"),
            ("POST", "/api/mood"),
            ("GET", "/recommend"),
            ("GET", "/api/status"),
            ("GET", "/api/emotions"),
            ("GET", "/healthz"),
            ("GET", "/"),
        )
    ),
]

TABLE = [
    *(
        (svc, "POST", path, case)
        for svc, path in (("emotion", "/predict"), ("gateway", "/predict"), ("gateway", "/analyze"))
        for case in IMAGE_CASES
    ),
    *(("gateway", "POST", "/analyze", case) for case in ANALYZE_CASES),
    *(("gateway", "POST", "/api/mood", case) for case in MOOD_CASES),
    *((svc, "GET", "/recommend", case) for svc in ("recommender", "gateway") for case in RECOMMEND_CASES),
    *WRONG_METHOD,
]


def assert_still_healthy(url: str) -> None:
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("service", "method", "path", "case"), TABLE, ids=[f"{s} {m} {p}: {c.name}" for s, m, p, c in TABLE]
)
def test_bad_input_gets_a_clear_4xx(stack: Stack, service: str, method: str, path: str, case: Case) -> None:
    base = getattr(stack, service)
    url = f"{base}{path}" + (f"?{case.query}" if case.query else "")
    resp = httpx.request(method, url, timeout=30, **case.request)
    assert resp.status_code == case.status, resp.text[:300]
    assert resp.headers["content-type"].startswith("application/json")
    detail = resp.json()["detail"]
    if case.detail.endswith("..."):
        assert detail.startswith(case.detail[:-3]) and len(detail) > len(case.detail) - 3, detail
    else:
        assert detail == case.detail
    assert_still_healthy(base)


@pytest.mark.parametrize("service", ["emotion", "gateway"])
def test_a_one_pixel_image_is_a_picture_without_faces(stack: Stack, service: str) -> None:
    base = getattr(stack, service)
    resp = httpx.post(f"{base}/predict", timeout=30, **upload(one_pixel_png(), mime="image/png"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["faces"] == [] and (resp.json()["width"], resp.json()["height"]) == (1, 1)
    assert_still_healthy(base)


@pytest.mark.parametrize(
    ("service", "method", "path"), ALL_ENDPOINTS, ids=[f"{s} {m} {p}" for s, m, p in ALL_ENDPOINTS]
)
def test_a_100_kb_query_is_refused_by_the_http_layer(
    stack: Stack, service: str, method: str, path: str
) -> None:
    """The server refuses a request line this long (431) before the application runs;
    the point here is that it is a 4xx and that the service carries on (httpx refuses such URLs, so
    http.client sends it)."""
    base = urllib.parse.urlsplit(getattr(stack, service))
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    try:
        conn.request(
            method,
            f"{path}?q={'a' * TOO_LONG}",
            body=JPEG if method == "POST" else None,
            headers={"Content-Type": "image/jpeg"},
        )
        status = conn.getresponse().status
    finally:
        conn.close()
    assert 400 <= status < 500
    assert_still_healthy(getattr(stack, service))

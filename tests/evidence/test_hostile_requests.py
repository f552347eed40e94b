"""Requests built to break things, against the running system (real processes): a client's request id
never causes a 5xx nor costs another user's tracks, and numbers out of any range in client input are a
JSON 422, never a 500."""

from __future__ import annotations

import json

import httpx
import pytest

from samples.images import astronaut_jpeg
from tests.integration.stack import Stack

JPEG = astronaut_jpeg()
HOSTILE_IDS = {
    "200 KB": b"a" * 200_000,
    "non-ASCII (UTF-8)": "caf\u00e9-\u4e2d\u6587".encode(),
    "non-ASCII (latin-1)": b"caf\xe9",
    "control characters": b"id\x01\x7f",
}
# (service, method, path, needs an image)
ENDPOINTS = [
    ("gateway", "POST", "/analyze?recommend=always", True),
    ("gateway", "POST", "/predict", True),
    ("gateway", "POST", "/api/mood", False),
    ("gateway", "GET", "/recommend?emotion=sad&seed=17", False),
    ("gateway", "GET", "/api/status", False),
    ("emotion", "POST", "/predict", True),
    ("recommender", "GET", "/recommend?emotion=sad&seed=18", False),
]


def other_users_tracks(stack: Stack) -> dict:
    """What an ordinary viewer gets from /analyze right after the hostile request."""
    resp = httpx.post(
        f"{stack.gateway}/analyze",
        params={"recommend": "always", "seed": 99},
        content=JPEG,
        headers={"Content-Type": "image/jpeg"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize("kind", sorted(HOSTILE_IDS))
@pytest.mark.parametrize(
    ("service", "method", "path", "image"), ENDPOINTS, ids=[f"{s} {m} {p}" for s, m, p, _ in ENDPOINTS]
)
def test_a_hostile_request_id_is_replaced_and_costs_nobody_else(
    stack: Stack, kind: str, service: str, method: str, path: str, image: bool
) -> None:
    headers = {b"X-Request-ID": HOSTILE_IDS[kind]}
    if image:
        headers[b"Content-Type"] = b"image/jpeg"
    resp = httpx.request(
        method,
        f"{getattr(stack, service)}{path}",
        headers=headers,
        content=JPEG if image else None,
        timeout=30,
    )
    # A server may refuse a 200 KB header outright (431); it must never be the application failing.
    assert resp.status_code < 500, resp.text[:300]
    if resp.status_code == 200:
        echoed = resp.headers["x-request-id"]
        assert echoed.encode() != HOSTILE_IDS[kind] and len(echoed) <= 64 and echoed.isascii()
    answer = other_users_tracks(stack)
    assert answer["recommender_error"] is None and answer["tracks"], answer


def test_a_well_formed_request_id_is_kept(stack: Stack) -> None:
    resp = httpx.get(f"{stack.gateway}/healthz", headers={"X-Request-ID": "trace-42:a/b"}, timeout=10)
    assert resp.headers["x-request-id"] == "trace-42:a/b"


BAD_BOXES = {
    "1e309": b'[{"x": 1e309, "y": 0, "w": 10, "h": 10}]',
    "an integer of 400 digits": b'[{"x": ' + b"9" * 400 + b', "y": 0, "w": 10, "h": 10}]',
    "a huge width": b'[{"x": 0, "y": 0, "w": ' + b"9" * 30 + b', "h": 10}]',
    "a huge negative y": b'[{"x": 0, "y": -' + b"9" * 30 + b', "w": 10, "h": 10}]',
    "NaN": b'[{"x": NaN, "y": 0, "w": 10, "h": 10}]',
    "Infinity": b'[{"x": Infinity, "y": 0, "w": 10, "h": 10}]',
    "deep nesting": b"[" * 5000 + b"]" * 5000,
    "not UTF-8": b"\xff\xfe[]",
}


@pytest.mark.parametrize("case", sorted(BAD_BOXES))
def test_boxes_out_of_any_range_are_a_422(stack: Stack, case: str) -> None:
    for base in (stack.emotion, stack.gateway):
        resp = httpx.post(
            f"{base}/predict",
            files={"image": ("f.jpg", JPEG, "image/jpeg"), "boxes": (None, BAD_BOXES[case])},
            timeout=30,
        )
        assert resp.status_code == 422, (base, resp.status_code, resp.text[:300])
        assert resp.headers["content-type"].startswith("application/json")
        assert "boxes" in resp.json()["detail"]


def test_the_largest_accepted_box_values_do_not_overflow(stack: Stack) -> None:
    """The largest box values the service accepts are treated as a box far outside the image (422)."""
    boxes = json.dumps([{"x": 2**31 - 1, "y": 0, "w": 2**31 - 1, "h": 2**31 - 1}])
    resp = httpx.post(
        f"{stack.emotion}/predict",
        files={"image": ("f.jpg", JPEG, "image/jpeg"), "boxes": (None, boxes)},
        timeout=30,
    )
    assert resp.status_code == 422 and "outside" in resp.json()["detail"]


@pytest.mark.parametrize(
    "content_type", [b"image/jpeg; x=\xe9", b"\xff\xfe", b"multipart/form-data; boundary=\xe9"]
)
def test_a_non_ascii_content_type_is_a_4xx(stack: Stack, content_type: bytes) -> None:
    for base in (stack.emotion, stack.gateway):
        for path in ("/predict", "/analyze"):
            if base == stack.emotion and path == "/analyze":
                continue
            resp = httpx.post(
                f"{base}{path}", content=JPEG, headers={b"Content-Type": content_type}, timeout=30
            )
            assert 400 <= resp.status_code < 500 or resp.status_code == 200, resp.text[:300]
            assert resp.headers["content-type"].startswith("application/json")

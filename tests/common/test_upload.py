"""The one upload reader (emotion and gateway): size limits with the multipart allowance, 413/415/422."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.common.errors import STATUSES
from services.common.observability import instrument
from services.common.upload import MULTIPART_OVERHEAD, UploadBody, image_fields

LIMIT = 1000


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.state.settings = SimpleNamespace(max_upload_bytes=LIMIT)
    instrument(app, "probe", lambda: True, STATUSES)

    @app.post("/echo")
    async def echo(body: UploadBody) -> dict[str, object]:
        upload = image_fields(body, LIMIT)
        return {"image": len(upload.image), "boxes": upload.boxes and upload.boxes.decode()}

    return TestClient(app)


def _detail(client: TestClient, status: int, **kwargs: Any) -> str:
    r = client.post("/echo", **kwargs)
    assert r.status_code == status, r.text
    return str(r.json()["detail"])


def test_raw_and_multipart_bodies_give_the_image_and_boxes(client: TestClient) -> None:
    raw = client.post("/echo", content=b"x" * LIMIT, headers={"Content-Type": "image/png"})
    assert raw.json() == {"image": LIMIT, "boxes": None}
    form = client.post("/echo", files={"image": ("a.jpg", b"y" * 10, "image/jpeg")}, data={"boxes": "[]"})
    assert form.json() == {"image": 10, "boxes": "[]"}


def test_size_limits(client: TestClient) -> None:
    too_big = "upload too large: the limit is 1000 bytes"
    assert _detail(client, 413, content=b"x" * (LIMIT + 1), headers={"Content-Type": "image/jpeg"}) == too_big
    streamed = iter([b"x" * 600, b"x" * 600])  # no Content-Length: counted while reading
    assert _detail(client, 413, content=streamed, headers={"Content-Type": "image/jpeg"}) == too_big
    # A multipart body may exceed the limit by the allowance; its image part may not.
    assert _detail(client, 413, files={"image": ("a.jpg", b"y" * (LIMIT + 1), "image/jpeg")}) == too_big
    padding = {"pad": "z" * (LIMIT + MULTIPART_OVERHEAD)}
    assert _detail(client, 413, files={"image": ("a.jpg", b"y", "image/jpeg")}, data=padding) == too_big


def test_what_is_not_an_image_upload(client: TestClient) -> None:
    assert "empty body" in _detail(client, 422, content=b"", headers={"Content-Type": "image/jpeg"})
    assert "text/plain" in _detail(client, 415, content=b"hello", headers={"Content-Type": "text/plain"})
    assert "(none)" in _detail(client, 415, content=b"hello")
    no_boundary = {"Content-Type": "multipart/form-data"}
    assert "boundary" in _detail(client, 422, content=b"--x\r\n", headers=no_boundary)
    form = {"files": {"other": ("a.jpg", b"y", "image/jpeg")}}
    assert "no 'image' field" in _detail(client, 422, **form)
    long_boxes = {"files": {"image": ("a.jpg", b"y", "image/jpeg")}, "data": {"boxes": "1" * 5000}}
    assert "'boxes' field too long" in _detail(client, 422, **long_boxes)
    malformed = {"Content-Type": "multipart/form-data; boundary=x"}
    assert "malformed" in _detail(client, 422, content=b"--x\r\nnot a header\r\n\r\nzz", headers=malformed)

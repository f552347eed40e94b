"""ApiError: one handler, registered by the shared instrumentation, answers `{"detail": ...}`."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.common.errors import ApiError, too_large
from services.common.observability import instrument


def _app() -> FastAPI:
    app = FastAPI()
    instrument(app, "probe", lambda: True)

    @app.get("/busy")
    def busy() -> None:
        raise ApiError(503, "try later", headers={"Retry-After": "2"})

    @app.get("/big")
    def big() -> None:
        raise too_large(1000)

    @app.get("/count")
    def count(n: int) -> int:
        return n

    return app


def test_api_error_answers_its_status_message_and_headers() -> None:
    with TestClient(_app()) as client:
        r = client.get("/busy", headers={"X-Request-ID": "abc"})
    assert r.status_code == 503
    assert r.json() == {"detail": "try later"}
    assert r.headers["retry-after"] == "2"
    assert r.headers["x-request-id"] == "abc"  # the error passes through the same middleware


def test_every_error_has_the_same_shape() -> None:
    with TestClient(_app()) as client:
        answers = {
            "api": client.get("/big"),
            "validation": client.get("/count", params={"n": "x"}),
            "not found": client.get("/nowhere"),
            "method": client.post("/busy"),
        }
    assert {k: r.status_code for k, r in answers.items()} == {
        "api": 413,
        "validation": 422,
        "not found": 404,
        "method": 405,
    }
    for r in answers.values():
        body = r.json()
        assert list(body) == ["detail"] and isinstance(body["detail"], str) and body["detail"]
    assert "1000 bytes" in answers["api"].json()["detail"]
    assert answers["validation"].json()["detail"].startswith("n: ")

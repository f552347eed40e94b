"""Domain code raises RequestErrors; each service's errors module maps them to statuses, and the one handler
the shared instrumentation registers answers `{"detail": ...}`. Statuses are named only at the edge."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services.common.errors import (
    STATUSES,
    VALIDATION_STATUS,
    Busy,
    InvalidRequest,
    RequestError,
    Status,
    status_of,
    too_large,
)
from services.common.observability import instrument
from services.emotion.app import create_app as emotion_app
from services.emotion.errors import STATUSES as EMOTION
from services.gateway.app import create_app as gateway_app
from services.gateway.clients import BackendRejected
from services.gateway.errors import STATUSES as GATEWAY
from services.recommender.app import create_app as recommender_app
from services.recommender.errors import STATUSES as RECOMMENDER

SERVICES = Path(__file__).resolve().parents[2] / "services"


def _app() -> FastAPI:
    app = FastAPI()
    instrument(app, "probe", lambda: True, STATUSES)

    @app.get("/busy")
    def busy() -> None:
        raise Busy("try later", retry_after_s=2)

    @app.get("/big")
    def big() -> None:
        raise too_large(1000)

    @app.get("/count")
    def count(n: int) -> int:
        return n

    return app


def test_a_request_error_answers_its_status_message_and_headers() -> None:
    with TestClient(_app()) as client:
        r = client.get("/busy", headers={"X-Request-ID": "abc"})
    assert r.status_code == 503
    assert r.json() == {"detail": "try later"}
    assert r.headers["retry-after"] == "2"
    assert r.headers["x-request-id"] == "abc"  # the error passes through the same middleware


def test_every_error_has_the_same_shape() -> None:
    with TestClient(_app()) as client:
        answers = {
            "domain": client.get("/big"),
            "validation": client.get("/count", params={"n": "x"}),
            "not found": client.get("/nowhere"),
            "method": client.post("/busy"),
        }
    assert {k: r.status_code for k, r in answers.items()} == {
        "domain": 413,
        "validation": 422,
        "not found": 404,
        "method": 405,
    }
    for r in answers.values():
        body = r.json()
        assert list(body) == ["detail"] and isinstance(body["detail"], str) and body["detail"]
    assert "1000 bytes" in answers["domain"].json()["detail"]
    assert answers["validation"].json()["detail"].startswith("n: ")


def test_the_nearest_mapped_kind_decides_and_a_backend_refusal_keeps_its_status() -> None:
    class OddInput(InvalidRequest):
        pass

    assert status_of(OddInput("x"), STATUSES) == 422
    assert status_of(BackendRejected("no such emotion", 404), GATEWAY) == 404
    with pytest.raises(LookupError):
        status_of(RequestError("unmapped"), STATUSES)


SERVICE_APPS: dict[str, tuple[Callable[[], FastAPI], dict[type[RequestError], Status]]] = {
    "emotion": (emotion_app, EMOTION),
    "recommender": (recommender_app, RECOMMENDER),
    "gateway": (gateway_app, GATEWAY),
}


@pytest.mark.parametrize("service", list(SERVICE_APPS))
def test_every_declared_error_of_a_route_is_one_its_service_maps(service: str) -> None:
    make, statuses = SERVICE_APPS[service]
    mapped = {status for status in statuses.values() if isinstance(status, int)} | {VALIDATION_STATUS}
    routes = [r for r in make().routes if isinstance(r, APIRoute) and r.responses]
    assert routes, "no route declares its errors"
    for route in routes:
        declared = {int(status) for status in route.responses if int(status) >= 400}
        assert declared <= mapped, f"{service} {route.path}: {sorted(declared - mapped)} not in its mapping"


def _raised_statuses(source: str) -> list[int]:
    """HTTP statuses passed to what a `raise` makes (or an HTTPException named at all) in this source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for call in (n for n in ast.walk(node.exc) if isinstance(n, ast.Call)):
                found += [
                    arg.value
                    for arg in [*call.args, *(k.value for k in call.keywords)]
                    if isinstance(arg, ast.Constant) and type(arg.value) is int and 400 <= arg.value < 600
                ]
        if isinstance(node, ast.ImportFrom | ast.Import) and any(
            a.name == "HTTPException" for a in node.names
        ):
            found.append(0)
    return found


def test_the_check_sees_a_status_raised() -> None:
    assert _raised_statuses("raise ApiError(503, 'busy')") == [503]
    assert _raised_statuses("raise Error('x', headers={'a': 1}, status=404)") == [404]
    assert _raised_statuses("from fastapi import HTTPException") == [0]
    assert _raised_statuses("raise Busy('x', retry_after_s=1)") == []
    assert _raised_statuses("raise Failed('x', transient=status >= 500)") == []  # a status read, not raised


def test_no_status_is_raised_outside_an_errors_module() -> None:
    offenders = {
        str(path.relative_to(SERVICES)): statuses
        for path in sorted(SERVICES.rglob("*.py"))
        if path.name != "errors.py" and (statuses := _raised_statuses(path.read_text()))
    }
    assert offenders == {}


def _kinds(base: type[RequestError]) -> list[type[RequestError]]:
    return [k for sub in base.__subclasses__() for k in [sub, *_kinds(sub)]]


def test_every_error_kind_a_service_defines_has_a_status_in_its_mapping() -> None:
    for path in sorted(SERVICES.rglob("*.py")):  # every module, so that every kind is defined
        module = ".".join(path.relative_to(SERVICES.parent).with_suffix("").parts)
        if not module.endswith("__main__"):
            importlib.import_module(module)
    mappings = {"emotion": EMOTION, "recommender": RECOMMENDER, "gateway": GATEWAY}
    unmapped = []
    for kind in _kinds(RequestError):
        if kind.__subclasses__():
            continue  # a family (BackendError): its members are what is raised
        parts = kind.__module__.split(".")
        services = [parts[1]] if parts[1] in mappings else list(mappings)  # common kinds: every service
        for service in services:
            if not any(k in mappings[service] for k in kind.__mro__):
                unmapped.append(f"{service}: {kind.__module__}.{kind.__name__}")
    assert unmapped == []

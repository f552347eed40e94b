"""The errors a request can end in, and the one error body every service answers them with.

Domain code raises a RequestError subclass and knows nothing of HTTP; each service's edge
(services/<service>/errors.py) maps each kind to a status, and the handler the shared instrumentation
registers (observability.instrument) answers `{"detail": message}` with it. Only errors modules name
HTTP statuses (tests/common/test_errors.py holds the rest of the tree to that).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.common.contracts import ErrorResponse


class RequestError(Exception):
    """Why a request cannot be answered as asked; str(exc) is the message the client reads.
    `retry_after_s`: when trying again may work; `close`: the rest of the request cannot be read, so its
    connection cannot carry another."""

    def __init__(self, message: str, *, retry_after_s: int | None = None, close: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        self.close = close


class InvalidRequest(RequestError):
    """The request's own mistake: a bad parameter, an empty body, an undecodable image."""


class TooLarge(RequestError):
    """An upload or an image over the service's limit."""


class Unsupported(RequestError):
    """An upload of a type or format the service does not take."""


class BodyTimeout(RequestError):
    """The request body did not arrive in time."""


class Busy(RequestError):
    """The service is full for now (a frame, a new session, an upload beyond the budget)."""


class NotReady(RequestError):
    """The service cannot answer yet (starting, or missing what it needs); the message says why."""


class NotFound(RequestError):
    """No such thing to serve (a file named by a manifest that has since changed)."""


def too_large(limit: int) -> TooLarge:
    return TooLarge(f"upload too large: the limit is {limit} bytes")


Status = int | Callable[[RequestError], int]
# What every service answers for the shared errors; a service's errors module adds its own.
STATUSES: dict[type[RequestError], Status] = {
    InvalidRequest: 422,
    TooLarge: 413,
    Unsupported: 415,
    BodyTimeout: 408,
    Busy: 503,
    NotReady: 503,
    NotFound: 404,
}
VALIDATION_STATUS = 422  # FastAPI's own parameter checks


def status_of(exc: RequestError, statuses: Mapping[type[RequestError], Status]) -> int:
    """The status for the nearest kind of `exc` that `statuses` maps (a subclass may refine it)."""
    for kind in type(exc).__mro__:
        if kind in statuses:
            status = statuses[kind]
            return status if isinstance(status, int) else status(exc)
    raise LookupError(f"no status for {type(exc).__name__}")  # a kind the service forgot to map


def error_responses(reasons: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: the statuses its errors answer and why, documented in OpenAPI (a test
    holds them to the service's mapping)."""
    return {status: {"model": ErrorResponse, "description": why} for status, why in reasons.items()}


def error_body(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message}, headers=headers)


def install(app: FastAPI, statuses: Mapping[type[RequestError], Status]) -> None:
    """Every error of `app` answers the one body: its RequestErrors by `statuses` (the service's errors
    module), validation errors, and the framework's own 404 and 405."""
    app.add_exception_handler(RequestError, request_error_handler(statuses))
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, framework_error)


def request_error_handler(
    statuses: Mapping[type[RequestError], Status],
) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError)  # registered for RequestError only
        headers = {}
        if exc.retry_after_s is not None:
            headers["Retry-After"] = str(exc.retry_after_s)
        if exc.close:
            headers["Connection"] = "close"
        return error_body(status_of(exc, statuses), exc.message, headers or None)

    return handle


def validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body"))
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


async def validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_body(VALIDATION_STATUS, validation_message(exc))


async def framework_error(_: Request, exc: Exception) -> Response:
    """The framework's own 404 and 405, in the same body."""
    assert isinstance(exc, HTTPException)
    return error_body(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

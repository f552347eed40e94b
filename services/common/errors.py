"""The one error type a route raises to answer `{"detail": message}` with an HTTP status.

The shared instrumentation (observability.instrument) registers its handler on every service, so emotion,
recommender and gateway refuse a request the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from services.common.contracts import ErrorResponse


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers) if headers else None


def error_responses(reasons: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: the ApiError statuses it answers and why, documented in OpenAPI."""
    return {status: {"model": ErrorResponse, "description": why} for status, why in reasons.items()}


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"upload too large: the limit is {limit} bytes")


async def api_error_response(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # registered for ApiError only
    return JSONResponse(status_code=exc.status, content={"detail": exc.message}, headers=exc.headers)

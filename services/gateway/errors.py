"""The gateway's edge: the HTTP status of each error its domain code raises, the shared kinds and its
backends' failures."""

from __future__ import annotations

from services.common.errors import STATUSES as COMMON
from services.common.errors import RequestError, Status
from services.gateway.clients import BackendFailed, BackendRejected, BackendUnavailable
from services.gateway.state import RateLimited


def _as_answered(exc: RequestError) -> int:
    """A backend's refusal of the client's request is passed on with the status it answered."""
    assert isinstance(exc, BackendRejected)
    return exc.answered


STATUSES: dict[type[RequestError], Status] = {
    **COMMON,
    BackendUnavailable: 503,
    BackendFailed: 502,
    BackendRejected: _as_answered,
    RateLimited: 429,
}

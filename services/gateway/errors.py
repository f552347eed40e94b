"""The gateway's edge: the HTTP status of each error its domain code raises, the shared kinds and its
backends' failures."""

from __future__ import annotations

from services.common.errors import STATUSES as COMMON
from services.common.errors import RequestError, Status
from services.gateway.clients import BackendFailed, BackendRejected, BackendUnavailable
from services.gateway.spotify import account as spotify
from services.gateway.spotify.vault import VaultUnavailable
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
    # Save to Spotify (services/gateway/spotify/)
    spotify.WrongOrigin: 400,
    spotify.NotConnected: 401,
    spotify.Forbidden: 403,
    spotify.Refused: 502,
    spotify.Unavailable: 502,
    spotify.RateLimited: 503,  # Spotify asked to wait longer than a save waits: Retry-After says how long
    spotify.Unreachable: 503,
    VaultUnavailable: 503,
}

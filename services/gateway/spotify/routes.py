"""/api/spotify: the page's Save to Spotify. Thin: SpotifyAccounts (account.py) does the work; its
errors get their statuses in services/gateway/errors.py.

GET /api/spotify is always there (it says whether the feature is on); the others only with a client id.
The session cookie is HttpOnly (no script reads it), SameSite=Lax (it comes back with Spotify's redirect,
a top-level navigation, and with nothing another site posts) and limited to /api/spotify.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from services.common.contracts import MAX_TRACKS, TRACK_ID_PATTERN, Emotion, Strategy
from services.common.errors import NotReady, error_responses
from services.gateway.spotify.account import SaveRequest, SpotifyAccounts
from services.gateway.spotify.vault import COOKIE, Session

status_router = APIRouter(tags=["spotify"])
router = APIRouter(prefix="/api/spotify", tags=["spotify"])

ERRORS = error_responses(
    {
        400: "this page's address cannot be sent back to by Spotify",
        401: "not connected to Spotify (or no longer): connect",
        403: "Spotify refused: the listener's account does not allow it",
        502: "Spotify failed or refused the request",
        503: "Spotify or the session store is unavailable, or asks to wait (Retry-After)",
    }
)


class SpotifyStatus(BaseModel):
    enabled: bool
    connected: bool = False
    scopes: list[str] = Field(default_factory=list)
    last_playlist: dict[str, str] | None = None


class ConnectBody(BaseModel):
    public: bool = Field(default=False, description="ask to save public playlists (else private ones)")


class ConnectAnswer(BaseModel):
    authorize_url: str = Field(description="Spotify's consent page: send the listener there")


class SaveBody(BaseModel):
    tracks: list[Annotated[str, Field(pattern=TRACK_ID_PATTERN)]] = Field(min_length=1, max_length=MAX_TRACKS)
    emotion: Emotion
    strategy: Strategy = Strategy.match
    public: bool = False
    append: bool = Field(default=False, description="add to the playlist saved to last, not a new one")


class SavedPlaylist(BaseModel):
    id: str
    name: str
    url: str
    added: int = Field(description="tracks added now")
    already_there: int = Field(description="tracks the playlist already had from an earlier save")


async def accounts(request: Request) -> SpotifyAccounts:
    found = request.app.state.spotify
    if not isinstance(found, SpotifyAccounts):
        raise NotReady("gateway not started")
    return found


Accounts = Annotated[SpotifyAccounts, Depends(accounts)]


def _session(request: Request) -> Session | None:
    return Session.from_cookie(request.cookies.get(COOKIE))


@status_router.get(
    "/api/spotify",
    response_model=SpotifyStatus,
    responses=error_responses({503: "the session store is unavailable"}),
)
async def spotify_status(request: Request) -> dict[str, Any]:
    """Whether Save to Spotify is on, and whether this listener is connected."""
    found = request.app.state.spotify
    if not isinstance(found, SpotifyAccounts):
        return {"enabled": False}
    return await found.status(_session(request))


def _with_cookie(response: Response, request: Request, session: Session | None, max_age: int) -> None:
    if session is None:
        response.delete_cookie(COOKIE, path="/api/spotify")
        return
    response.set_cookie(
        COOKIE,
        session.cookie,
        max_age=max_age,
        path="/api/spotify",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


@router.post("/connect", response_model=ConnectAnswer, responses=ERRORS)
async def connect(
    request: Request, response: Response, spotify: Accounts, body: ConnectBody
) -> dict[str, str]:
    """Starts the authorization: the listener goes to the URL answered, and comes back to /callback."""
    session, url = await spotify.connect(_session(request), str(request.base_url), body.public)
    _with_cookie(response, request, session, spotify.settings.session_ttl_s)
    return {"authorize_url": url}


@router.get("/callback", response_class=RedirectResponse, status_code=303, responses=ERRORS)
async def callback(
    request: Request,
    spotify: Accounts,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=256)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> RedirectResponse:
    """Where Spotify sends the listener back: back to the page, with the outcome in `?spotify=`."""
    outcome = await spotify.finish(_session(request), code, state, error)
    return RedirectResponse(f"/?spotify={outcome}", status_code=303)


@router.post("/save", response_model=SavedPlaylist, responses=ERRORS)
async def save(request: Request, spotify: Accounts, body: SaveBody) -> dict[str, Any]:
    """Saves the list as a playlist (again: only what is missing from it)."""
    wanted = SaveRequest(body.tracks, body.emotion, body.strategy, body.public, body.append)
    saved = await spotify.save(_session(request), wanted)
    return {
        "id": saved.playlist_id,
        "name": saved.name,
        "url": saved.url,
        "added": saved.added,
        "already_there": saved.already_there,
    }


@router.delete("", response_model=SpotifyStatus, responses=ERRORS)
async def disconnect(request: Request, response: Response, spotify: Accounts) -> dict[str, Any]:
    """Deletes this listener's tokens and what was saved from the server, and the cookie."""
    await spotify.disconnect(_session(request))
    _with_cookie(response, request, None, 0)
    return {"enabled": True, "connected": False}

"""Connect, save, disconnect: what the gateway does for a listener's Spotify account, through spotipy
(its PKCE auth manager for /authorize and /api/token, its client for the Web API), run on a worker thread
since spotipy blocks.

A save is resumable: the playlist's id is kept as soon as Spotify created it, and each batch of tracks
once Spotify confirmed it, so a retry after any failure adds only what is missing, to the same playlist,
in order. A 429 is waited out for its Retry-After (up to `max_wait_s`, else the page is told when to come
back); a 5xx is retried once; an expired access token is refreshed once. Nothing here logs a token:
spotipy's own debug lines carry the Authorization header, so its logger is kept above DEBUG.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import secrets
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import spotipy
from spotipy.cache_handler import MemoryCacheHandler

from services.common.contracts import Emotion, Strategy
from services.common.errors import RequestError
from services.gateway.spotify.settings import SpotifySettings
from services.gateway.spotify.vault import Playlist, Record, Session, Vault

log = logging.getLogger("moodtunes.gateway.spotify")
# spotipy logs each request's headers (the bearer token among them) at DEBUG, and each 4xx/5xx at ERROR
# (a 429 waited out is no error); _call logs what happened instead.
logging.getLogger("spotipy").setLevel(logging.CRITICAL)

T = TypeVar("T")

PRIVATE, PUBLIC = "playlist-modify-private", "playlist-modify-public"
ITEMS_PER_REQUEST = 100  # Spotify's limit for adding items to a playlist
RATE_LIMIT_WAITS = 3  # 429s waited out within one call before the page is told to come back
REFRESH_MARGIN_S = 60  # an access token this close to expiry is refreshed before use
CALLBACK_PATH = "/api/spotify/callback"


class SpotifyError(RequestError):
    """Why a save or a connection did not happen; the gateway's errors module gives each kind a status."""


class NotConnected(SpotifyError):
    """No usable authorization: connect (again)."""


class WrongOrigin(SpotifyError):
    """The page is open at an address Spotify will not send the listener back to."""


class Refused(SpotifyError):
    """Spotify refused the request as made (a 4xx other than 401, 403 and 429)."""


class Forbidden(Refused):
    """Spotify refused the listener (403): a scope, or an account the app may not serve."""


class RateLimited(SpotifyError):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"Spotify asks moodtunes to wait {retry_after_s} s; try again then, the save will finish "
            "where it stopped",
            retry_after_s=retry_after_s,
        )


class Unavailable(SpotifyError):
    """Spotify failed (5xx)."""


class Unreachable(Unavailable):
    """Spotify could not be reached."""


@dataclass(frozen=True)
class SaveRequest:
    tracks: list[str]
    emotion: Emotion
    strategy: Strategy
    public: bool = False
    append: bool = False  # add to the playlist saved to last instead of a new one

    @property
    def key(self) -> str:
        """The same list saved again is the same key (and so the same playlist)."""
        what = f"{self.emotion}|{self.strategy}|{int(self.public)}|{','.join(self.tracks)}"
        return hashlib.sha256(what.encode()).hexdigest()[:32]

    def name(self, day: datetime.date) -> str:
        mood = self.emotion.value if self.strategy is Strategy.match else f"brighter after {self.emotion}"
        return f"moodtunes: {mood}, {day.isoformat()}"

    def description(self, day: datetime.date) -> str:
        how = (
            f"that match a face that looked {self.emotion}"
            if self.strategy is Strategy.match
            else f"that start near a face that looked {self.emotion} and lift it toward a brighter mood"
        )
        return f"{len(self.tracks)} tracks {how}, picked by moodtunes on {day.isoformat()}."


@dataclass(frozen=True)
class Saved:
    playlist_id: str
    name: str
    url: str
    added: int
    already_there: int


def redirect_for(settings: SpotifySettings, base_url: str) -> str:
    """The redirect URI: the configured one, else this page's origin + CALLBACK_PATH. WrongOrigin when
    the page's origin is not the one the listener comes back to (the session cookie would not come
    back), or is `localhost`, which Spotify refuses."""
    here = urlsplit(base_url)
    uri = settings.redirect_uri or f"{here.scheme}://{here.netloc}{CALLBACK_PATH}"
    there = urlsplit(uri)
    if there.hostname == "localhost":
        port = f":{there.port}" if there.port else ""
        raise WrongOrigin(
            "Spotify refuses 'localhost' addresses: "
            f"open moodtunes at http://127.0.0.1{port} to save to Spotify"
        )
    if (there.scheme, there.netloc) != (here.scheme, here.netloc):
        raise WrongOrigin(
            f"open moodtunes at {there.scheme}://{there.netloc} to save to Spotify "
            "(the address its Spotify app sends listeners back to)"
        )
    return uri


class SpotifyAccounts:
    def __init__(self, settings: SpotifySettings, vault: Vault) -> None:
        assert settings.client_id is not None
        self.settings = settings
        self.client_id = settings.client_id
        self.vault = vault
        # One save at a time per session (a double click must not create two playlists).
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # ---------- authorization ----------

    def _auth(self, redirect_uri: str, scope: str | None = None) -> spotipy.SpotifyPKCE:
        auth = spotipy.SpotifyPKCE(
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            cache_handler=MemoryCacheHandler(),  # never a file: the vault keeps the tokens
            requests_timeout=self.settings.timeout_s,
            open_browser=False,
        )
        auth.OAUTH_AUTHORIZE_URL = f"{self.settings.accounts_url}/authorize"
        auth.OAUTH_TOKEN_URL = f"{self.settings.accounts_url}/api/token"
        return auth

    async def status(self, session: Session | None) -> dict[str, Any]:
        record = await self.vault.load(session) if session else None
        token = record.token if record else None
        last = record.playlists.get(record.last) if record and record.last else None
        return {
            "enabled": True,
            "connected": token is not None,
            "scopes": sorted(token["scope"].split()) if token else [],
            "last_playlist": {"name": last.name, "url": last.url} if last else None,
        }

    async def connect(self, session: Session | None, base_url: str, public: bool) -> tuple[Session, str]:
        """Starts an authorization: the URL of Spotify's consent page, and the session to remember its
        state and verifier in (the listener's, when they have one, so what they saved stays known)."""
        redirect_uri = redirect_for(self.settings, base_url)
        record = await self.vault.load(session) if session else None
        if session is None or record is None:
            session, record = Session.new(), Record()
        auth = self._auth(redirect_uri, PUBLIC if public else PRIVATE)
        auth.get_pkce_handshake_parameters()
        record.state, record.verifier, record.redirect_uri = (
            secrets.token_urlsafe(16),
            auth.code_verifier,
            redirect_uri,
        )
        await self.vault.store(session, record)
        return session, auth.get_authorize_url(record.state)

    async def finish(
        self, session: Session | None, code: str | None, state: str | None, error: str | None
    ) -> str:
        """Spotify sent the listener back: the outcome the page is told (connected, denied, refused:
        a state that is not this session's pending one, failed: the exchange failed). The pending
        state is used up either way."""
        record = await self.vault.load(session) if session else None
        if session is None or record is None or record.state is None:
            return "expired"
        expected, verifier, redirect_uri = record.state, record.verifier, record.redirect_uri
        if not state or not secrets.compare_digest(state, expected):
            log.warning("spotify: authorization refused: its state is not the one this session started")
            return "refused"
        record.state = record.verifier = None
        if error or not code or verifier is None or redirect_uri is None:
            await self.vault.store(session, record)
            return "denied" if error == "access_denied" else "failed"
        auth = self._auth(redirect_uri)
        auth.code_verifier, auth.code_challenge = verifier, "sent"
        try:
            await asyncio.to_thread(auth.get_access_token, code, False)
        except (spotipy.SpotifyOauthError, requests.RequestException) as exc:
            log.warning("spotify: the code exchange failed: %s", getattr(exc, "error", type(exc).__name__))
            await self.vault.store(session, record)
            return "failed"
        record.token = _token(auth.cache_handler.get_cached_token())
        await self.vault.store(session, record)
        return "connected"

    async def disconnect(self, session: Session | None) -> None:
        if session is not None:
            await self.vault.delete(session)

    # ---------- saving ----------

    async def save(self, session: Session | None, request: SaveRequest) -> Saved:
        if session is None:
            raise NotConnected("not connected to Spotify")
        # Read under the lock: a save that waited must see the playlist the one before it created.
        async with self._locks.setdefault(session.sid, asyncio.Lock()):
            record = await self.vault.load(session)
            if record is None or record.token is None:
                raise NotConnected("not connected to Spotify")
            if (PUBLIC if request.public else PRIVATE) not in record.token["scope"].split():
                kind = "public" if request.public else "private"
                raise NotConnected(f"saving a {kind} playlist needs your consent")
            return await self._save(session, record, request)

    async def _save(self, session: Session, record: Record, request: SaveRequest) -> Saved:
        pid = record.last if request.append and record.last else record.saves.get(request.key)
        if pid is None or pid not in record.playlists:
            today = datetime.date.today()
            name, description = request.name(today), request.description(today)
            created = await self._call(
                session,
                record,
                lambda sp: sp.current_user_playlist_create(
                    name, public=request.public, description=description
                ),
            )
            pid = created["id"]
            record.playlists[pid] = Playlist(
                name=created.get("name", name), url=created["external_urls"]["spotify"]
            )
            record.saves[request.key] = record.last = pid
            await self.vault.store(session, record)
        playlist = record.playlists[pid]
        there = set(playlist.tracks)
        missing = [t for t in dict.fromkeys(request.tracks) if t not in there]
        for start in range(0, len(missing), ITEMS_PER_REQUEST):
            batch = missing[start : start + ITEMS_PER_REQUEST]

            def add(sp: spotipy.Spotify, batch: list[str] = batch) -> Any:
                return sp.playlist_add_items(pid, batch)

            await self._call(session, record, add)
            playlist.tracks += batch
            await self.vault.store(session, record)
        record.saves[request.key] = record.last = pid
        await self.vault.store(session, record)
        return Saved(pid, playlist.name, playlist.url, len(missing), len(request.tracks) - len(missing))

    async def _call(self, session: Session, record: Record, call: Callable[[spotipy.Spotify], T]) -> T:
        """One Web API call with the listener's token: refreshed when it is about to expire or Spotify
        says it expired, 429s waited out, one 5xx retried."""
        refreshed = server_errors = waits = 0
        while True:
            assert record.token is not None
            if record.token["expires_at"] - time.time() < REFRESH_MARGIN_S and not refreshed:
                await self._refresh(session, record)
                refreshed += 1
            http = requests.Session()  # spotipy's own would retry through urllib3: the policy is ours
            client = spotipy.Spotify(
                auth=record.token["access_token"],
                requests_session=http,
                requests_timeout=self.settings.timeout_s,
            )
            client.prefix = f"{self.settings.api_url}/"
            try:
                return await asyncio.to_thread(call, client)
            except spotipy.SpotifyException as exc:
                status, message = exc.http_status, _message(exc)
                if status == 401 and not refreshed:
                    await self._refresh(session, record)
                    refreshed += 1
                    continue
                if status == 401:
                    await self._forget_token(session, record)
                    raise NotConnected(f"Spotify no longer accepts this connection ({message})") from exc
                if status == 429:
                    wait = _retry_after(exc.headers)
                    if waits >= RATE_LIMIT_WAITS or wait > self.settings.max_wait_s:
                        raise RateLimited(wait) from exc
                    waits += 1
                    log.info("spotify: rate limited, waiting %d s as asked", wait)
                    await asyncio.sleep(wait)
                    continue
                if status >= 500 and not server_errors:
                    server_errors += 1
                    await asyncio.sleep(1)
                    continue
                log.warning("spotify: HTTP %d from the Web API: %s", status, message)
                if status >= 500:
                    raise Unavailable(f"Spotify failed (HTTP {status}: {message})") from exc
                raise (Forbidden if status == 403 else Refused)(f"Spotify refused: {message}") from exc
            except requests.RequestException as exc:
                raise Unreachable(f"Spotify cannot be reached ({type(exc).__name__})") from exc
            finally:
                http.close()

    async def _refresh(self, session: Session, record: Record) -> None:
        assert record.token is not None and record.redirect_uri is not None
        auth = self._auth(record.redirect_uri)
        try:
            info = await asyncio.to_thread(auth.refresh_access_token, record.token["refresh_token"])
        except spotipy.SpotifyOauthError as exc:
            await self._forget_token(session, record)
            raise NotConnected("your Spotify connection expired: connect again") from exc
        except requests.RequestException as exc:
            raise Unreachable(f"Spotify cannot be reached ({type(exc).__name__})") from exc
        record.token = _token(info, record.token["scope"])
        await self.vault.store(session, record)

    async def _forget_token(self, session: Session, record: Record) -> None:
        record.token = None
        await self.vault.store(session, record)


def _token(info: dict[str, Any] | None, scope: str = "") -> dict[str, Any]:
    """What is kept of a token answer (no more)."""
    assert info is not None
    return {
        "access_token": info["access_token"],
        "refresh_token": info["refresh_token"],
        "expires_at": info["expires_at"],
        "scope": info.get("scope") or scope,
    }


def _message(exc: spotipy.SpotifyException) -> str:
    # spotipy puts the URL first ("<url>:\n <message>"); the listener needs the message.
    return str(exc.msg).rsplit("\n", 1)[-1].strip() or f"HTTP {exc.http_status}"


def _retry_after(headers: Any) -> int:
    try:
        return max(1, int((headers or {}).get("Retry-After", "1")))
    except ValueError:
        return 1

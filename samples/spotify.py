"""A fake Spotify for tests: the accounts service (/authorize with a consent page, /api/token) and the
Web API (/v1/me, POST /v1/me/playlists, POST /v1/playlists/{id}/items) on two loopback ports, speaking
the protocol strictly: the registered client id and redirect URIs, PKCE (the verifier's S256 against the
challenge), scopes, the Authorization header, the 100-items-per-request limit, the state echoed, and
Spotify's error shapes ({"error", "error_description"} from accounts, {"error": {"status", "message"}}
from the API). Faults on demand: `fail(...)` answers the next matching requests with 401, 403, 429 (with
Retry-After) or a 5xx; `expire_tokens()` makes every access token expired.

Endpoints and shapes follow Spotify's Web API reference after its February 2026 changes (create a
playlist: POST /me/playlists; add items: POST /playlists/{id}/items, body {"uris": [...]} or, as
spotipy sends it, the bare list) and its Authorization Code with PKCE guide. The page never calls the
API itself (the gateway does), so no CORS is spoken here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from samples.servers import http_server

CLIENT_ID = "moodtunesfaketestclient0000000001"
KNOWN_SCOPES = frozenset(
    {
        "playlist-modify-private",
        "playlist-modify-public",
        "playlist-read-private",
        "playlist-read-collaborative",
        "user-read-private",
        "user-read-email",
    }
)
TRACK_URI = re.compile(r"^spotify:track:[0-9A-Za-z]{22}$")
CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
TOKEN_LIFETIME_S = 3600
CODE_LIFETIME_S = 600


def _id() -> str:
    """A base62 id of Spotify's length (22)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(secrets.choice(alphabet) for _ in range(22))


@dataclass
class Fault:
    method: str
    path: str  # a regex over the path, e.g. r"/v1/playlists/[^/]+/items"
    status: int
    times: int = 1
    retry_after: int | None = None
    message: str | None = None


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    expires: float


@dataclass
class FakePlaylist:
    id: str
    owner: str
    name: str
    description: str
    public: bool
    uris: list[str] = field(default_factory=list)


@dataclass
class FakeSpotify:
    """What the fake holds; tests read and change it directly (under `lock`)."""

    client_id: str = CLIENT_ID
    redirect_uris: set[str] = field(default_factory=set)
    user_id: str = "moodtunes-listener"
    accounts_url: str = ""
    api_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[str, dict[str, str]] = field(default_factory=dict)  # consent page id -> authorize params
    codes: dict[str, Grant] = field(default_factory=dict)
    access: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (scope, expires at)
    refresh: dict[str, str] = field(default_factory=dict)  # refresh token -> scope
    issued: list[str] = field(default_factory=list)  # every access and refresh token ever issued
    playlists: dict[str, FakePlaylist] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    # (time, method, path, status) of every request; token requests' bodies' keys (secrets must not come)
    requests: list[tuple[float, str, str, int]] = field(default_factory=list)
    token_fields: list[set[str]] = field(default_factory=list)
    basic_auth_seen: bool = False

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        times: int = 1,
        retry_after: int | None = None,
        message: str | None = None,
    ) -> None:
        with self.lock:
            self.faults.append(Fault(method, path, status, times, retry_after, message))

    def expire_tokens(self) -> None:
        with self.lock:
            self.access = {t: (scope, 0.0) for t, (scope, _) in self.access.items()}

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh.clear()

    def calls(self, method: str, path: str) -> list[tuple[float, int]]:
        """(time, status) of the requests to `path` (a regex)."""
        return [(t, s) for t, m, p, s in self.requests if m == method and re.fullmatch(path, p)]

    def _fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and re.fullmatch(fault.path, path) and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSpotify
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: object) -> None:
        pass

    # ---------- answering ----------

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        path = urlsplit(self.path).path
        with self.fake.lock:
            self.fake.requests.append((time.time(), self.command, path, status))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8", headers)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class _Accounts(_Handler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        url = urlsplit(self.path)
        if url.path != "/authorize":
            self._page(404, "Not found")
            return
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        problem = self._check_authorize(query)
        if problem:
            # Spotify shows these on its own page; it never redirects to a URI it does not trust.
            self._page(400, problem)
            return
        page_id = secrets.token_urlsafe(8)
        with self.fake.lock:
            self.fake.pending[page_id] = query
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in query.get("scope", "").split())
        self._page(
            200,
            f"""<h1>Connect moodtunes to your Spotify account</h1>
<p>moodtunes asks to:</p><ul id="scopes">{scopes}</ul>
<form method="post" action="/authorize/decision">
<input type="hidden" name="page" value="{page_id}">
<button name="decision" value="agree" id="agree">Agree</button>
<button name="decision" value="cancel" id="cancel">Cancel</button></form>""",
        )

    def _check_authorize(self, query: dict[str, str]) -> str | None:
        if query.get("client_id") != self.fake.client_id:
            return "INVALID_CLIENT: Invalid client"
        if query.get("redirect_uri") not in self.fake.redirect_uris:
            return "INVALID_CLIENT: Invalid redirect URI"
        if query.get("response_type") != "code":
            return "unsupported_response_type: response_type must be code"
        if query.get("code_challenge_method") != "S256" or not CHALLENGE.fullmatch(
            query.get("code_challenge", "")
        ):
            return "invalid_request: code_challenge must be an S256 challenge"
        unknown = set(query.get("scope", "").split()) - KNOWN_SCOPES
        if unknown:
            return f"invalid_scope: {sorted(unknown)[0]}"
        return None

    def _page(self, status: int, content: str) -> None:
        body = f"<!doctype html><html><head><title>Spotify (fake)</title></head><body>{content}</body></html>"
        self._send(status, body.encode(), "text/html; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path == "/authorize/decision":
            self._decision()
        elif path == "/api/token":
            self._token()
        else:
            self._json(404, {"error": "not_found"})

    def _decision(self) -> None:
        form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}
        with self.fake.lock:
            query = self.fake.pending.pop(form.get("page", ""), None)
        if query is None:
            self._page(400, "This consent page expired.")
            return
        answer: dict[str, str]
        if form.get("decision") == "agree":
            code = secrets.token_urlsafe(32)
            with self.fake.lock:
                self.fake.codes[code] = Grant(
                    query["client_id"],
                    query["redirect_uri"],
                    query["code_challenge"],
                    query.get("scope", ""),
                    time.time() + CODE_LIFETIME_S,
                )
            answer = {"code": code}
        else:
            answer = {"error": "access_denied"}
        if "state" in query:
            answer["state"] = query["state"]
        self._send(302, b"", "text/plain", {"Location": f"{query['redirect_uri']}?{urlencode(answer)}"})

    def _token(self) -> None:
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            self._json(400, {"error": "invalid_request", "error_description": "unsupported content type"})
            return
        form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}
        with self.fake.lock:
            self.fake.token_fields.append(set(form))
            self.fake.basic_auth_seen |= self.headers.get("Authorization", "").startswith("Basic ")
        if form.get("client_id") != self.fake.client_id:
            self._json(400, {"error": "invalid_client", "error_description": "Invalid client"})
            return
        grant = form.get("grant_type")
        if grant == "authorization_code":
            self._exchange(form)
        elif grant == "refresh_token":
            with self.fake.lock:
                scope = self.fake.refresh.pop(form.get("refresh_token", ""), None)
            if scope is None:
                self._json(400, {"error": "invalid_grant", "error_description": "Invalid refresh token"})
                return
            self._json(200, self._issue(scope))
        else:
            self._json(400, {"error": "unsupported_grant_type", "error_description": f"grant_type: {grant}"})

    def _exchange(self, form: dict[str, str]) -> None:
        with self.fake.lock:
            grant = self.fake.codes.pop(form.get("code", ""), None)  # a code is good once
        if grant is None or grant.expires < time.time():
            self._json(400, {"error": "invalid_grant", "error_description": "Invalid authorization code"})
            return
        if form.get("redirect_uri") != grant.redirect_uri:
            self._json(400, {"error": "invalid_grant", "error_description": "Invalid redirect URI"})
            return
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if not VERIFIER.fullmatch(verifier) or digest != grant.challenge:
            self._json(400, {"error": "invalid_grant", "error_description": "code_verifier was incorrect"})
            return
        self._json(200, self._issue(grant.scope))

    def _issue(self, scope: str) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
        with self.fake.lock:
            self.fake.access[access] = (scope, time.time() + TOKEN_LIFETIME_S)
            self.fake.refresh[refresh] = scope
            self.fake.issued += [access, refresh]
        return {
            "access_token": access,
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": TOKEN_LIFETIME_S,
            "refresh_token": refresh,
        }


class _Api(_Handler):
    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._json(status, {"error": {"status": status, "message": message}}, headers)

    def _authorized(self) -> str | None:
        """The token's scope, or None after answering 401."""
        header = self.headers.get("Authorization", "")
        if not header:
            self._error(401, "No token provided")
            return None
        kind, _, token = header.partition(" ")
        with self.fake.lock:
            found = self.fake.access.get(token) if kind == "Bearer" else None
        if found is None:
            self._error(401, "Invalid access token")
            return None
        scope, expires = found
        if expires < time.time():
            self._error(401, "The access token expired")
            return None
        return scope

    def _faulted(self, path: str) -> bool:
        fault = self.fake._fault(self.command, path)
        if fault is None:
            return False
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        default = {401: "The access token expired", 403: "Forbidden", 429: "API rate limit exceeded"}
        self._error(fault.status, fault.message or default.get(fault.status, "Server error"), headers)
        return True

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if self._authorized() is None or self._faulted(path):
            return
        if path == "/v1/me":
            self._json(200, self._user())
        else:
            self._error(404, "Service not found")

    def _user(self) -> dict[str, Any]:
        uid = self.fake.user_id
        return {
            "id": uid,
            "display_name": "A listener",
            "type": "user",
            "uri": f"spotify:user:{uid}",
            "href": f"{self.fake.api_url}/users/{uid}",
            "external_urls": {"spotify": f"https://open.spotify.com/user/{uid}"},
        }

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        scope = self._authorized()
        if scope is None or self._faulted(path):
            return
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            self._error(400, "Content-Type must be application/json")
            return
        try:
            body = json.loads(self._body() or b"null")
        except ValueError:
            self._error(400, "Error parsing JSON.")
            return
        items = re.fullmatch(r"/v1/playlists/([^/]+)/items", path)
        if path == "/v1/me/playlists":
            self._create(body, scope.split())
        elif items:
            self._add(items.group(1), body, scope.split())
        else:
            self._error(404, "Service not found")

    def _create(self, body: Any, scopes: list[str]) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            self._error(400, "Missing required field: name")
            return
        public = body.get("public", True)
        if ("playlist-modify-public" if public else "playlist-modify-private") not in scopes:
            self._error(403, "Insufficient client scope")
            return
        playlist = FakePlaylist(
            _id(), self.fake.user_id, body["name"], body.get("description", ""), bool(public)
        )
        with self.fake.lock:
            self.fake.playlists[playlist.id] = playlist
        self._json(201, self._playlist(playlist))

    def _playlist(self, p: FakePlaylist) -> dict[str, Any]:
        return {
            "id": p.id,
            "name": p.name,
            "description": p.description,
            "public": p.public,
            "collaborative": False,
            "type": "playlist",
            "uri": f"spotify:playlist:{p.id}",
            "href": f"{self.fake.api_url}/playlists/{p.id}",
            "external_urls": {"spotify": f"https://open.spotify.com/playlist/{p.id}"},
            "owner": self._user(),
            "snapshot_id": secrets.token_urlsafe(12),
            "items": {"href": f"{self.fake.api_url}/playlists/{p.id}/items", "total": len(p.uris)},
        }

    def _add(self, playlist_id: str, body: Any, scopes: list[str]) -> None:
        uris = body.get("uris") if isinstance(body, dict) else body
        position = body.get("position") if isinstance(body, dict) else None
        if not isinstance(uris, list) or not uris:
            self._error(400, "No uris provided")
            return
        if len(uris) > 100:
            self._error(400, "You can add a maximum of 100 tracks per request.")
            return
        if not all(isinstance(u, str) and TRACK_URI.fullmatch(u) for u in uris):
            self._error(400, "Invalid base62 id")
            return
        with self.fake.lock:
            playlist = self.fake.playlists.get(playlist_id)
        if playlist is None:
            self._error(404, "Not found.")
            return
        if playlist.owner != self.fake.user_id:
            self._error(403, "You cannot add tracks to a playlist you don't own.")
            return
        if ("playlist-modify-public" if playlist.public else "playlist-modify-private") not in scopes:
            self._error(403, "Insufficient client scope")
            return
        with self.fake.lock:
            at = len(playlist.uris) if position is None else int(position)
            playlist.uris[at:at] = uris
        self._json(201, {"snapshot_id": secrets.token_urlsafe(12)})


@contextlib.contextmanager
def fake_spotify() -> Iterator[FakeSpotify]:
    """The fake's accounts service and Web API on two free loopback ports."""
    fake = FakeSpotify()
    accounts = type("Accounts", (_Accounts,), {"fake": fake})
    api = type("Api", (_Api,), {"fake": fake})
    with http_server(accounts) as accounts_url, http_server(api) as api_base:
        fake.accounts_url, fake.api_url = accounts_url, f"{api_base}/v1"
        yield fake


def spotify_env(fake: FakeSpotify, redirect_uri: str | None = None) -> dict[str, str]:
    """The gateway's environment for the fake (MOODTUNES_SPOTIFY_*)."""
    env = {
        "MOODTUNES_SPOTIFY_CLIENT_ID": fake.client_id,
        "MOODTUNES_SPOTIFY_ACCOUNTS_URL": fake.accounts_url,
        "MOODTUNES_SPOTIFY_API_URL": fake.api_url,
    }
    return env | ({"MOODTUNES_SPOTIFY_REDIRECT_URI": redirect_uri} if redirect_uri else {})

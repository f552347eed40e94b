"""Each listener's Spotify session on the server: the pending authorization (state, PKCE verifier), the
tokens and what was saved, as one record encrypted (Fernet: AES-CBC + HMAC) with a key that lives only
in the listener's cookie. Redis (shared by the replicas) or this process holds ciphertext under a hash of
the session id, and drops it after `ttl_s` without use; "disconnect" deletes it at once. Without the
cookie the record cannot be found or read, so a copy of Redis gives away no token.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from cachetools import TTLCache
from cryptography.fernet import Fernet, InvalidToken
from redis.exceptions import RedisError

from services.common.errors import RequestError
from services.gateway.redis_link import RedisLink

COOKIE = "moodtunes_spotify"
# Sessions this process holds without Redis; the oldest leave first.
MEMORY_SESSIONS_MAX = 10_000


class VaultUnavailable(RequestError):
    """The session store (Redis) failed."""


@dataclass
class Playlist:
    name: str
    url: str
    tracks: list[str] = field(default_factory=list)  # ids whose addition Spotify confirmed, in order


@dataclass
class Record:
    state: str | None = None  # the pending authorization's state and PKCE verifier
    verifier: str | None = None
    redirect_uri: str | None = None
    token: dict[str, Any] | None = None  # access_token, refresh_token, expires_at, scope
    playlists: dict[str, Playlist] = field(default_factory=dict)  # by Spotify playlist id
    saves: dict[str, str] = field(default_factory=dict)  # a saved list's key -> its playlist's id
    last: str | None = None  # the playlist saved to last

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> Record:
        raw = orjson.loads(data)
        raw["playlists"] = {pid: Playlist(**p) for pid, p in raw["playlists"].items()}
        return cls(**raw)


@dataclass(frozen=True)
class Session:
    sid: str
    secret: str  # the Fernet key without its padding (a cookie value cannot carry '=')

    @classmethod
    def new(cls) -> Session:
        return cls(secrets.token_urlsafe(32), base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()[:43])

    @classmethod
    def from_cookie(cls, cookie: str | None) -> Session | None:
        sid, _, secret = (cookie or "").partition(".")
        return cls(sid, secret) if len(sid) == 43 and len(secret) == 43 else None

    @property
    def cookie(self) -> str:
        return f"{self.sid}.{self.secret}"

    @property
    def fernet(self) -> Fernet:
        return Fernet(self.secret + "=")

    def key(self, prefix: str) -> str:
        return f"{prefix}spotify:{hashlib.sha256(self.sid.encode()).hexdigest()}"


class Vault:
    def __init__(self, redis: RedisLink | None, prefix: str, ttl_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._memory: TTLCache[str, bytes] = TTLCache(maxsize=MEMORY_SESSIONS_MAX, ttl=ttl_s)

    @property
    def backend(self) -> str:
        return "memory" if self.redis is None else "redis"

    async def load(self, session: Session) -> Record | None:
        """The session's record; None when there is none, it expired, or the key does not open it."""
        key = session.key(self.prefix)
        if self.redis is None:
            blob = self._memory.get(key)
        else:
            try:
                text = await self.redis.redis.get(key)
            except RedisError as exc:
                raise self._failed("read", exc) from exc
            blob = text.encode() if isinstance(text, str) else text
        if blob is None:
            return None
        try:
            return Record.from_json(session.fernet.decrypt(blob, ttl=self.ttl_s))
        except (InvalidToken, ValueError):
            return None

    async def store(self, session: Session, record: Record) -> None:
        """Writes the record and starts its time to live again."""
        key, blob = session.key(self.prefix), session.fernet.encrypt(record.to_json())
        if self.redis is None:
            self._memory[key] = blob
            return
        try:
            await self.redis.redis.set(key, blob.decode(), ex=self.ttl_s)
        except RedisError as exc:
            raise self._failed("write", exc) from exc

    async def delete(self, session: Session) -> None:
        key = session.key(self.prefix)
        if self.redis is None:
            self._memory.pop(key, None)
            return
        try:
            await self.redis.redis.delete(key)
        except RedisError as exc:
            raise self._failed("delete", exc) from exc

    def _failed(self, op: str, exc: RedisError) -> VaultUnavailable:
        assert self.redis is not None
        self.redis.failed(f"spotify session {op}", exc)
        return VaultUnavailable(f"the session store is unavailable ({exc.__class__.__name__})")

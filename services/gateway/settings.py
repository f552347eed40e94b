"""Gateway settings, in groups: the two backends, Redis, the /recommend cache, the steadiness rule, the
sessions and POST /api/mood. Each group reads the environment under its own prefix (GATEWAY_REDIS_, ...),
except REDIS_URL, which keeps its conventional plain name; each is handed whole to what uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.common.logs import LogSettings
from services.common.paths import REPO, cache_dir
from services.gateway import ortweb
from services.gateway.spotify.settings import SpotifySettings


class EmotionBackend(BaseSettings):
    """The emotion service, asked for every frame (services/gateway/clients.py)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_EMOTION_")

    url: str = "http://127.0.0.1:8001"  # the emotion service's address (a path prefix is kept)
    connect_timeout_s: float = 1.0  # a backend that does not accept the connection by then is down: 503
    # The emotion service runs a CNN per face; a crowded photo can take a while on a small CPU.
    timeout_s: float = 10.0


class RecommenderBackend(BaseSettings):
    """The recommender, asked once per change of a session's emotion (and cached)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_RECOMMENDER_")

    url: str = "http://127.0.0.1:8002"  # the recommender's address (a path prefix is kept)
    connect_timeout_s: float = 1.0  # a backend that does not accept the connection by then is down: 503
    timeout_s: float = 5.0  # a list is ranked in milliseconds: longer than this, it is not coming
    # Connection retries, only for the idempotent GET /recommend; the first is immediate, later ones back off.
    retries: int = Field(default=1, ge=0, le=5)
    # After the recommender fails (5xx, down, timeout), /analyze frames do not ask it for this long.
    backoff_s: float = Field(default=3.0, ge=0)


class RedisSettings(BaseSettings):
    """The Redis that gateway replicas share the /recommend cache and viewers' state through."""

    # populate_by_name: `url` in code, REDIS_URL in the environment.
    model_config = SettingsConfigDict(env_prefix="GATEWAY_REDIS_", populate_by_name=True)

    # Unset: the cache and the session state live in each gateway process (one replica).
    url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL"))
    prefix: str = "moodtunes:gateway:"  # of every key the gateway writes
    # Short so a dead or stuck Redis costs a request at most this much, once per back-off period.
    timeout_s: float = 0.2
    backoff_s: float = 10.0  # after a failure, Redis is not asked for this long (served without it)
    # Sessions that may be created within the session TTL, all replicas together; a new one beyond it gets
    # 503 with Retry-After (state.py). Sized for the million viewers of docs/scaling.md.
    new_sessions_max: int = Field(default=1_000_000, ge=1)


class CacheSettings(BaseSettings):
    """The /recommend cache: Redis with a URL, else in-process."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_CACHE_")

    ttl_s: int = Field(default=300, ge=1)  # how long a list is served again for the same request
    max_entries: int = Field(default=1024, ge=1)  # lists the in-process cache holds


class SteadinessSettings(BaseSettings):
    """The recommended emotion changes only when a new one wins `votes` of the last `window` frames that
    showed a face (services/gateway/steadiness.py)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_STEADINESS_")

    window: int = Field(default=5, ge=1, le=100)  # frames with a face that the rule looks back over
    votes: int = Field(default=3, ge=1, le=100)  # of them, for a new emotion to become the stable one

    @model_validator(mode="after")
    def _votes_fit_window(self) -> SteadinessSettings:
        if self.votes > self.window:
            raise ValueError(f"steadiness votes ({self.votes}) must not exceed the window ({self.window})")
        return self


class SessionSettings(BaseSettings):
    """What the gateway remembers of each viewer (a browser tab's session id)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_SESSIONS_")

    max: int = Field(default=10_000, ge=1)  # sessions a gateway process remembers (newest first)
    ttl_s: int = Field(default=900, ge=1)  # a session without frames for this long is forgotten


class MoodSettings(BaseSettings):
    """POST /api/mood, from a page that reads faces itself."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_MOOD_")

    # The requests a session may make per period (it posts when its steady emotion or its choice of music
    # changes); 429 with Retry-After beyond them, all replicas together with Redis.
    rate_requests: int = Field(default=20, ge=1)
    # The period of rate_requests, from the session's first request in it.
    rate_period_s: float = Field(default=60.0, gt=0)
    # The body limit (413 beyond it): a window of frames with a few faces each takes a few KB.
    max_body_bytes: int = Field(default=16 * 1024, ge=1024)


def _runtime_dir() -> Path:
    return cache_dir() / "onnxruntime-web"


class RuntimeSettings(BaseSettings):
    """onnxruntime-web, the page's on-device runtime (services/gateway/ondevice.py, ortweb.py)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_RUNTIME_")

    # Where it is installed at the first start (the gateway image has it installed at build time).
    dir: Path = Field(default_factory=_runtime_dir)
    # Where it is fetched from: npm's tarball, or a local copy's path; checked against ortweb.INTEGRITY.
    url: str = ortweb.URL


class GatewaySettings(LogSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    emotion: EmotionBackend = Field(default_factory=EmotionBackend)
    recommender: RecommenderBackend = Field(default_factory=RecommenderBackend)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    steadiness: SteadinessSettings = Field(default_factory=SteadinessSettings)
    sessions: SessionSettings = Field(default_factory=SessionSettings)
    mood: MoodSettings = Field(default_factory=MoodSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    # Save to Spotify (MOODTUNES_SPOTIFY_*; off without a client id).
    spotify: SpotifySettings = Field(default_factory=SpotifySettings)

    # Empty: same-origin only (the gateway serves the frontend itself). Comma-separated in the env.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (addresses, networks
    # such as 10.0.0.0/8, or *), comma-separated in the env; empty: none (compose publishes the gateway
    # itself). Behind a proxy that ends TLS (the Kubernetes Ingress) the page's https origin is known only
    # through them: Save to Spotify's redirect check and its cookie's Secure flag need it.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_upload_bytes: int = Field(default=8 * 1024 * 1024, ge=1)  # an image upload (413 beyond it)
    frontend_dir: Path = REPO / "frontend"  # the page the gateway serves at /

    @field_validator("cors_origins", "forwarded_allow_ips", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

"""Gateway settings; every field can be set from the environment with the GATEWAY_ prefix,
except REDIS_URL, which keeps its conventional plain name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from services.common.logs import LogSettings
from services.common.paths import REPO


class GatewaySettings(LogSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    emotion_url: str = "http://127.0.0.1:8001"
    recommender_url: str = "http://127.0.0.1:8002"
    connect_timeout_s: float = 1.0
    # The emotion service runs a CNN per face; a crowded photo can take a while on a small CPU.
    predict_timeout_s: float = 10.0
    recommend_timeout_s: float = 5.0
    # Connection retries, only for the idempotent GET /recommend; the first is immediate, later ones back off.
    recommend_retries: int = Field(default=1, ge=0, le=5)
    # After the recommender fails (5xx, down, timeout), /analyze frames do not ask it for this long.
    recommender_backoff_s: float = Field(default=3.0, ge=0)

    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL"))
    redis_prefix: str = "moodtunes:gateway:"
    # Short so a dead or stuck Redis costs a request at most this much, once per back-off period.
    redis_timeout_s: float = 0.2
    redis_backoff_s: float = 10.0
    cache_ttl_s: int = Field(default=300, ge=1)
    cache_max_entries: int = Field(default=1024, ge=1)

    # Empty: same-origin only (the gateway serves the frontend itself). Comma-separated in the env.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # The recommended emotion changes only when a new one wins `steadiness_votes` of the last
    # `steadiness_window` frames that showed a face.
    steadiness_window: int = Field(default=5, ge=1, le=100)
    steadiness_votes: int = Field(default=3, ge=1, le=100)
    sessions_max: int = Field(default=10_000, ge=1)
    session_ttl_s: int = Field(default=900, ge=1)
    # With Redis: sessions that may be created within session_ttl_s, all replicas together; a new one
    # beyond it gets 503 with Retry-After (state.py). Sized for the million viewers of docs/scaling.md.
    redis_new_sessions_max: int = Field(default=1_000_000, ge=1)

    # POST /api/mood, from a page that reads faces itself: the requests a session may make per period (it
    # posts when its steady emotion or its choice of music changes); 429 with Retry-After beyond them, all
    # replicas together with Redis.
    mood_rate_requests: int = Field(default=20, ge=1)
    # The period of mood_rate_requests, from the session's first request in it.
    mood_rate_period_s: float = Field(default=60.0, gt=0)
    # POST /api/mood's body limit (413 beyond it): a window of frames with a few faces each takes a few KB.
    mood_max_body_bytes: int = Field(default=16 * 1024, ge=1024)

    max_upload_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    frontend_dir: Path = REPO / "frontend"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("steadiness_votes")
    @classmethod
    def _votes_fit_window(cls, votes: int, info: ValidationInfo) -> int:
        window = info.data.get("steadiness_window")
        if window is not None and votes > window:
            raise ValueError(f"steadiness_votes ({votes}) must not exceed steadiness_window ({window})")
        return votes

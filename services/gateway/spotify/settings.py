"""The deployer's Spotify app: MOODTUNES_SPOTIFY_*, the names deployers were given (this group is
their one owner). Without a client id the feature is off: no routes but GET /api/spotify, which says
so, and the page shows no button."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SpotifySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOODTUNES_SPOTIFY_")

    # The app's client id from Spotify's developer dashboard. No client secret: PKCE needs none.
    client_id: str | None = None
    # The redirect URI registered with the app; unset: the page's own origin + /api/spotify/callback.
    redirect_uri: str | None = None
    # Spotify's accounts service: /authorize and /api/token live under it (a fake one in tests).
    accounts_url: str = "https://accounts.spotify.com"
    # Spotify's Web API (a fake one in tests).
    api_url: str = "https://api.spotify.com/v1"
    # A listener's tokens (and what was saved) are deleted this long after their last connect or save.
    session_ttl_s: int = Field(default=3600, ge=60, le=86_400)
    # Each request to Spotify.
    timeout_s: float = Field(default=10.0, gt=0)
    # The longest Retry-After waited out within one save; a longer one is passed on to the page (503).
    max_wait_s: int = Field(default=30, ge=0, le=120)

    @field_validator("client_id", "redirect_uri", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("accounts_url", "api_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def enabled(self) -> bool:
        return self.client_id is not None

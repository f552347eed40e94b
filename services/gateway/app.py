"""Gateway (port 8000): serves the frontend, proxies /predict and /recommend, and adds /analyze.

Run: `python -m services gateway` (services/launch.py's SERVICES table).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from granian.utils.proxies import wrap_asgi_with_proxy_headers

from services.common.observability import instrument
from services.gateway.errors import STATUSES
from services.gateway.pipeline import Gateway
from services.gateway.routes import router
from services.gateway.settings import GatewaySettings
from services.gateway.spotify import routes as spotify_routes
from services.gateway.spotify.account import SpotifyAccounts
from services.gateway.spotify.vault import Vault

log = logging.getLogger("moodtunes.gateway")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: GatewaySettings = app.state.settings
    gateway = app.state.pipeline = Gateway(settings)
    # In the background: the first start downloads the runtime; the page uses server mode until then.
    installing = asyncio.create_task(gateway.ondevice.install_runtime())
    log.info(
        "gateway: emotion=%s recommender=%s cache=%s",
        settings.emotion.url,
        settings.recommender.url,
        gateway.cache.backend,
    )
    if settings.spotify.enabled:
        vault = Vault(gateway.redis, settings.redis.prefix, settings.spotify.session_ttl_s)
        app.state.spotify = SpotifyAccounts(settings.spotify, vault)
        log.info(
            "gateway: save to Spotify on (accounts %s, sessions in %s)",
            settings.spotify.accounts_url,
            vault.backend,
        )
    yield
    installing.cancel()
    app.state.pipeline = app.state.spotify = None
    await gateway.aclose()


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The service; settings default to the environment (GATEWAY_*, REDIS_URL)."""
    settings = settings or GatewaySettings()
    app = FastAPI(title="moodtunes gateway", version="1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.pipeline = app.state.spotify = None
    # The gateway needs no backend to be ready itself; /api/status reports on the backends.
    instrument(app, "gateway", lambda: app.state.pipeline is not None, STATUSES, logs=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-Session-ID", "X-Request-ID"],
        )
    if settings.forwarded_allow_ips:
        # The client's address and scheme as the trusted proxy saw them (granian's own rewrite of the
        # ASGI scope, outermost): Save to Spotify's redirect check and its cookie's Secure flag read them.
        app.add_middleware(wrap_asgi_with_proxy_headers, trusted_hosts=settings.forwarded_allow_ips)
    app.include_router(router)
    app.include_router(spotify_routes.status_router)
    if settings.spotify.enabled:
        app.include_router(spotify_routes.router)
    app.mount("/", StaticFiles(directory=settings.frontend_dir, html=True), name="frontend")
    return app

"""Recommender service (port 8002): GET /recommend maps an emotion to Spotify tracks from the catalog.

Run: `python -m services recommender` (services/launch.py's SERVICES table).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.common.observability import instrument
from services.recommender.errors import STATUSES
from services.recommender.pipeline import Startup, needs_download, start, start_after_download
from services.recommender.routes import router
from services.recommender.settings import RecommenderSettings


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Never raises: without a usable catalog the service stays up, not ready, and says why.
    settings: RecommenderSettings = app.state.settings
    startup: Startup = app.state.startup
    if not needs_download(settings):
        app.state.pipeline = start(settings, startup)
        yield
        app.state.pipeline = None
        return

    async def first_run() -> None:
        app.state.pipeline = await start_after_download(settings, startup)

    # The service answers (healthy, not ready, saying why) while the first run downloads in the background.
    task = asyncio.create_task(first_run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        app.state.pipeline = None


def create_app(settings: RecommenderSettings | None = None) -> FastAPI:
    """The service; settings default to the environment (RECOMMENDER_*, MOODTUNES_DATA)."""
    app = FastAPI(title="moodtunes recommender", version="1.0", lifespan=lifespan)
    app.state.settings = settings or RecommenderSettings()
    app.state.startup = Startup()
    app.state.pipeline = None  # the Ranker, once start-up has built it
    instrument(
        app,
        "recommender",
        lambda: app.state.pipeline is not None,
        STATUSES,
        reason=lambda: app.state.startup.error,
        logs=app.state.settings,
    )
    app.include_router(router)
    return app

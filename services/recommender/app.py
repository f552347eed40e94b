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
from services.recommender.routes import router
from services.recommender.service import State, needs_download, start, start_after_download
from services.recommender.settings import RecommenderSettings


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Never raises: without a usable catalog the service stays up, not ready, and says why.
    settings: RecommenderSettings = app.state.settings
    if not needs_download(settings):
        app.state.recommender = start(settings)
        yield
        return
    # The service answers (healthy, not ready, saying why) while the first run downloads in the background.
    task = asyncio.create_task(start_after_download(settings, app.state.recommender))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(settings: RecommenderSettings | None = None) -> FastAPI:
    """The service; settings default to the environment (RECOMMENDER_*, MOODTUNES_DATA)."""
    app = FastAPI(title="moodtunes recommender", version="1.0", lifespan=lifespan)
    app.state.settings = settings or RecommenderSettings()
    app.state.recommender = State()
    instrument(
        app,
        "recommender",
        lambda: app.state.recommender.ranker is not None,
        STATUSES,
        reason=lambda: app.state.recommender.error,
        logs=app.state.settings,
    )
    app.include_router(router)
    return app

"""Emotion service (port 8001): POST /predict finds every face in an image and reads its emotion.

Run: `python -m services emotion` (services/launch.py's SERVICES table).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common.observability import instrument
from services.emotion.errors import STATUSES
from services.emotion.pipeline import EmotionPipeline
from services.emotion.routes import router
from services.emotion.settings import EmotionSettings

log = logging.getLogger("moodtunes.emotion")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The model is loaded once per process, at start-up; a model that breaks the contract stops it."""
    settings: EmotionSettings = app.state.settings
    try:
        app.state.pipeline = EmotionPipeline(settings)
    except Exception:
        log.exception("emotion service cannot start (model %s)", settings.model_path)
        raise
    log.info(
        "emotion model %s loaded, input %s, %d thread(s)",
        app.state.pipeline.classifier.name,
        app.state.pipeline.classifier.size,
        settings.threads,
    )
    yield
    app.state.pipeline = None


def create_app(settings: EmotionSettings | None = None) -> FastAPI:
    """The service; settings default to the environment (EMOTION_*)."""
    app = FastAPI(title="moodtunes emotion", version="1.0", lifespan=lifespan)
    app.state.settings = settings or EmotionSettings()
    app.state.pipeline = None
    instrument(app, "emotion", lambda: app.state.pipeline is not None, STATUSES, logs=app.state.settings)
    app.include_router(router)
    return app

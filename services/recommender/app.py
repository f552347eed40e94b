"""Recommender service (port 8002): GET /recommend maps an emotion to Spotify tracks from the catalog."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import orjson
from fastapi import FastAPI, Query, Response

from services.common.contracts import (
    MAX_SEED,
    MAX_TRACKS,
    Emotion,
    ErrorResponse,
    RecommendResponse,
    Strategy,
    parse_track_ids,
)
from services.common.errors import ApiError
from services.common.observability import instrument
from services.recommender.download import console
from services.recommender.service import RECOMMENDATIONS, State, needs_download, start, start_after_download
from services.recommender.settings import RecommenderSettings

state = State()


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    global state
    settings = RecommenderSettings()
    console(logging.getLogger("moodtunes.recommender"))
    if not needs_download(settings):
        state = start(settings)
        yield
        return
    # The service answers (healthy, not ready, saying why) while the first run downloads in the background.
    state = State()
    task = asyncio.create_task(start_after_download(settings, state))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


app = FastAPI(title="moodtunes recommender", lifespan=lifespan)
instrument(app, "recommender", lambda: state.ranker is not None, reason=lambda: state.error)


@app.get(
    "/recommend",
    response_model=RecommendResponse,
    responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def recommend(
    emotion: Emotion,
    limit: int = Query(10, ge=1, le=MAX_TRACKS),
    strategy: Strategy = Strategy.match,
    exclude: str = Query("", description="Comma-separated track ids already played"),
    seed: int | None = Query(
        None, ge=0, le=MAX_SEED, description="Same seed, same list; other seeds vary it"
    ),
) -> Response:
    # async: ranking takes well under a millisecond of CPU, less than the threadpool hop a sync route
    # costs. The body is serialised once with orjson from dicts built at start-up; returning a Response
    # skips FastAPI's re-validation, while response_model above still documents the schema.
    if state.ranker is None:
        raise ApiError(503, state.error)
    try:
        played = parse_track_ids(exclude)
    except ValueError as exc:
        raise ApiError(422, f"exclude: {exc}") from exc
    tracks = state.ranker.recommend_dicts(emotion, strategy, limit, played, seed)
    RECOMMENDATIONS.labels(emotion.value, strategy.value).inc()
    body = orjson.dumps({"emotion": emotion.value, "strategy": strategy.value, "tracks": tracks})
    return Response(body, media_type="application/json")

"""Recommender service (port 8002): GET /recommend maps an emotion to Spotify tracks from the catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
from services.recommender.service import RECOMMENDATIONS, State, start
from services.recommender.settings import RecommenderSettings

state = State()


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    global state
    state = start(RecommenderSettings())
    yield


app = FastAPI(title="moodtunes recommender", lifespan=lifespan)
instrument(app, "recommender", lambda: state.ranker is not None)


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

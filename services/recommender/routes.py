"""The recommender's routes: thin, the work is the ranker's (ranking.py)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Response

from services.common.contracts import RecommendMap, RecommendResponse
from services.common.errors import error_responses
from services.common.params import RecommendQuery, ready_state
from services.recommender.metrics import RECOMMENDATIONS
from services.recommender.ranking import Ranker

router = APIRouter()

ERRORS = error_responses({422: "a bad parameter", 503: "no catalog yet: why, and what to set"})


# The ranker built at start-up; while there is none, why (a setting to fix, or how far the first run got).
ReadyRanker = Annotated[Ranker, Depends(ready_state(Ranker, lambda state: state.startup.error))]


@router.get("/recommend", response_model=RecommendResponse, responses=ERRORS)
async def recommend(ranker: ReadyRanker, params: RecommendQuery) -> Response:
    # async: ranking takes well under a millisecond of CPU, less than the threadpool hop a sync route
    # costs. The body is serialised once with orjson from dicts built at start-up; returning a Response
    # skips FastAPI's re-validation, while response_model above still documents the schema.
    emotion, strategy = params.emotion, params.strategy
    tracks = ranker.recommend_dicts(params)
    RECOMMENDATIONS.labels(emotion.value, strategy.value).inc()
    body = orjson.dumps({"emotion": emotion.value, "strategy": strategy.value, "tracks": tracks})
    return Response(body, media_type="application/json")


@router.get("/recommend/map", response_model=RecommendMap, responses=ERRORS)
async def recommend_map(ranker: ReadyRanker, params: RecommendQuery) -> Response:
    """Why these songs: the list's tracks on the valence-energy plane, the region(s) they were kept in,
    and the catalog's density there (what the page's map draws)."""
    return Response(orjson.dumps(ranker.circumplex_map(params)), media_type="application/json")

"""The gateway's routes: thin, the work is the Gateway's (pipeline.py)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Response

from services.common.contracts import (
    EMOTIONS,
    AnalyzeResponse,
    PredictResponse,
    RecommendMap,
    RecommendResponse,
    Strategy,
)
from services.common.errors import error_responses
from services.common.params import RecommendQuery, RequestId, TrackOptions, ready_state
from services.common.upload import IMAGE_BODY, UPLOAD_ERRORS, UploadBody
from services.gateway.pipeline import Gateway, RecommendMode

router = APIRouter()

ERRORS = error_responses({**UPLOAD_ERRORS, 502: "a backend failed", 503: "a backend is unavailable"})

Detect = Annotated[bool | None, Query(description="false: the whole image is one face crop")]
Recommend = Annotated[
    RecommendMode,
    Query(
        description="auto: tracks only when the session's stable emotion changed (always without a session)"
    ),
]
Gw = Annotated[Gateway, Depends(ready_state("gateway", Gateway, "gateway not started"))]


def _json(body: bytes, headers: dict[str, str] | None = None) -> Response:
    # A Response, not a model: the answer is serialised once (response_model still documents it).
    return Response(body, media_type="application/json", headers=headers)


@router.get("/api/emotions", tags=["frontend"])
async def emotions() -> dict[str, list[str]]:
    return {"emotions": list(EMOTIONS), "strategies": [s.value for s in Strategy]}


@router.get("/api/status", tags=["frontend"])
async def status(gateway: Gw, rid: RequestId) -> dict[str, Any]:
    return await gateway.status(rid)


@router.post("/predict", response_model=PredictResponse, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def predict(gateway: Gw, rid: RequestId, upload: UploadBody, detect: Detect = None) -> Response:
    return _json(await gateway.emotion.predict(upload, detect, rid))  # passed on as the service sent it


@router.get("/recommend", response_model=RecommendResponse, responses=ERRORS)
async def recommend(gateway: Gw, rid: RequestId, params: RecommendQuery) -> Response:
    answer, cached = await gateway.recommend(params, rid)
    # The recommender's bytes, as it sent them (or as the cache kept them).
    return _json(answer, headers={"X-Cache": "hit" if cached else "miss"})


@router.get("/recommend/map", response_model=RecommendMap, responses=ERRORS)
async def recommend_map(gateway: Gw, rid: RequestId, params: RecommendQuery) -> Response:
    """Why these songs: the recommender's map of the same list (not cached: asked for on demand)."""
    return _json(await gateway.recommender.circumplex_map(params, rid))  # passed on as the service sent it


@router.post("/analyze", response_model=AnalyzeResponse, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def analyze(
    gateway: Gw,
    rid: RequestId,
    upload: UploadBody,
    params: TrackOptions,
    detect: Detect = None,
    recommend: Recommend = RecommendMode.auto,
    session: Annotated[str | None, Query(max_length=128)] = None,
    x_session_id: Annotated[str | None, Header(max_length=128)] = None,
) -> Response:
    result = await gateway.analyze(upload, detect, x_session_id or session, params, recommend, rid)
    return _json(orjson.dumps(result))

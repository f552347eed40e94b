"""The gateway's routes: thin, the work is the Gateway's (pipeline.py)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.routing import APIRoute

from services.common.contracts import (
    EMOTIONS,
    AnalyzeResponse,
    MoodRequest,
    MoodResponse,
    PredictResponse,
    RecommendMap,
    RecommendResponse,
    Strategy,
)
from services.common.errors import InvalidRequest, TooLarge, Unsupported, error_responses
from services.common.params import RecommendQuery, RequestId, TrackOptions, ready_state
from services.common.upload import IMAGE_BODY, UPLOAD_ERRORS, UploadBody
from services.gateway.ondevice import MODELS_PATH, RUNTIME_PATH, Encoded, OnDeviceInfo, file_headers, pick
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
SessionQuery = Annotated[str | None, Query(max_length=128, description="or the X-Session-ID header")]
SessionHeader = Annotated[str | None, Header(max_length=128)]
Gw = Annotated[Gateway, Depends(ready_state(Gateway, "gateway not started"))]


def _json(body: bytes, headers: dict[str, str] | None = None) -> Response:
    # A Response, not a model: the answer is serialised once (response_model still documents it).
    return Response(body, media_type="application/json", headers=headers)


@router.get("/api/emotions", tags=["frontend"])
async def emotions(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    return {
        "emotions": list(EMOTIONS),
        "strategies": [s.value for s in Strategy],
        # The rule a page that reads faces itself runs before POST /api/mood (services/gateway/steadiness.py).
        "steadiness": {"window": settings.steadiness.window, "votes": settings.steadiness.votes},
    }


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
    session: SessionQuery = None,
    x_session_id: SessionHeader = None,
) -> Response:
    result = await gateway.analyze(upload, detect, x_session_id or session, params, recommend, rid)
    return _json(orjson.dumps(result))


class JsonBodyRoute(APIRoute):
    """A route whose JSON body is read under the gateway's `mood.max_body_bytes` before FastAPI parses it:
    413 as soon as it is over (from the declared length when there is one), 415 unless it is JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def capped(request: Request) -> Response:
            limit: int = request.app.state.settings.mood.max_body_bytes
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                shown = media[:100] or "(none)"
                raise Unsupported(f"unsupported Content-Type {shown}: send application/json")
            declared = request.headers.get("content-length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > limit:
                raise TooLarge(f"body too large: the limit is {limit} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"body too large: the limit is {limit} bytes")
                chunks.append(chunk)
            return await handler(_ReadRequest(request.scope, request.receive, b"".join(chunks)))

        return capped


class _ReadRequest(Request):
    """A request whose body was already read."""

    def __init__(self, scope: Any, receive: Any, data: bytes) -> None:
        super().__init__(scope, receive)
        self._data = data

    async def body(self) -> bytes:
        return self._data


async def mood(
    gateway: Gw,
    rid: RequestId,
    body: MoodRequest,
    params: TrackOptions,
    recommend: Recommend = RecommendMode.auto,
    session: SessionQuery = None,
    x_session_id: SessionHeader = None,
) -> Response:
    """On-device mode: the page found the faces and their emotions itself and sends no image, only the
    probabilities of its recent frames, when its steady emotion (or its choice of tracks) changes. The
    answer is the session's steady emotion as the gateway derives it from them, and tracks as /analyze
    gives them."""
    session_id = x_session_id or session
    if not session_id:
        raise InvalidRequest("session: send an X-Session-ID header or a session parameter")
    result = await gateway.mood(body.frames, session_id, params, recommend, rid)
    return _json(orjson.dumps(result))


router.add_api_route(
    "/api/mood",
    mood,
    methods=["POST"],
    tags=["frontend"],
    response_model=MoodResponse,
    responses=error_responses(
        {
            413: "body over the limit",
            415: "not application/json",
            422: "a malformed window of frames, no session, or a bad parameter",
            429: "the session's rate of mood updates is spent (Retry-After)",
            502: "a backend failed",
            503: "a backend is unavailable, or too many new sessions (Retry-After)",
        }
    ),
    route_class_override=JsonBodyRoute,
)


@router.get("/api/ondevice", response_model=OnDeviceInfo, tags=["frontend"])
async def ondevice(gateway: Gw, rid: RequestId) -> Response:
    """What the page's on-device mode loads (the runtime and the emotion service's graphs), or why it
    cannot: the page then uses server mode and says so."""
    info = await gateway.ondevice.info(rid)
    return _json(info.model_dump_json().encode(), headers={"Cache-Control": "no-cache"})


def _file(encoded: Encoded, accept_encoding: str | None, if_none_match: str | None, kind: str) -> Response:
    body, encoding = pick(encoded, accept_encoding or "")
    headers = file_headers(encoded, encoding, kind)
    if if_none_match and encoded.etag in if_none_match:
        headers.pop("Content-Type")
        return Response(status_code=304, headers=headers)
    return Response(body, headers=headers)


CONTENT_TYPES = {".mjs": "text/javascript", ".wasm": "application/wasm"}


@router.get(f"{RUNTIME_PATH}/{{version}}/{{name}}", tags=["frontend"], include_in_schema=False)
async def runtime_file(
    gateway: Gw,
    version: str,
    name: str,
    accept_encoding: Annotated[str | None, Header()] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    encoded = gateway.ondevice.runtime_file(version, name)
    kind = CONTENT_TYPES.get(name[name.rfind(".") :], "application/octet-stream")
    return _file(encoded, accept_encoding, if_none_match, kind)


@router.get(f"{MODELS_PATH}/{{name}}", tags=["frontend"], include_in_schema=False)
async def model_file(
    gateway: Gw,
    rid: RequestId,
    name: str,
    accept_encoding: Annotated[str | None, Header()] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    encoded = await gateway.ondevice.graph(name, rid)
    return _file(encoded, accept_encoding, if_none_match, "application/octet-stream")

"""Gateway (port 8000): serves the frontend, proxies /predict and /recommend, and adds /analyze."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from services.common.contracts import (
    EMOTIONS,
    AnalyzeResponse,
    ErrorResponse,
    PredictResponse,
    RecommendResponse,
    Strategy,
)
from services.common.observability import instrument
from services.common.params import RecommendQuery, TrackOptions
from services.gateway.pipeline import Gateway, RecommendMode
from services.gateway.settings import GatewaySettings

log = logging.getLogger("moodtunes.gateway")

IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary"}},
                }
            },
            **{
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("image/jpeg", "image/png", "image/webp", "image/heic", "image/heif", "image/avif")
            },
        },
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (413, 415, 422, 502, 503)
}

Detect = Annotated[bool | None, Query(description="false: the whole image is one face crop")]


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.gateway = Gateway(settings)
        log.info(
            "gateway: emotion=%s recommender=%s cache=%s",
            settings.emotion_url,
            settings.recommender_url,
            app.state.gateway.cache.backend,
        )
        yield
        await app.state.gateway.aclose()
        del app.state.gateway

    app = FastAPI(title="moodtunes gateway", version="1.0", lifespan=lifespan)
    # The gateway needs no backend to be ready itself; /api/status reports on the backends.
    instrument(app, "gateway", lambda: hasattr(app.state, "gateway"))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-Session-ID", "X-Request-ID"],
        )

    def gateway(request: Request) -> Gateway:
        return request.app.state.gateway

    @app.get("/api/emotions", tags=["frontend"])
    def emotions() -> dict[str, list[str]]:
        return {"emotions": list(EMOTIONS), "strategies": [s.value for s in Strategy]}

    @app.get("/api/status", tags=["frontend"])
    async def status(request: Request) -> dict[str, Any]:
        return await gateway(request).status(request.state.request_id)

    @app.post("/predict", response_model=PredictResponse, responses=ERRORS, openapi_extra=IMAGE_BODY)
    async def predict(request: Request, detect: Detect = None) -> Response:
        gw = gateway(request)
        body = await gw.read_upload(request)
        answer = await gw.emotion.predict(
            body, request.headers.get("content-type"), detect, request.state.request_id
        )
        return JSONResponse(answer)

    @app.get("/recommend", response_model=RecommendResponse, responses=ERRORS)
    async def recommend(request: Request, params: RecommendQuery) -> Response:
        answer, cached = await gateway(request).recommend(params, request.state.request_id)
        return JSONResponse(answer, headers={"X-Cache": "hit" if cached else "miss"})

    @app.post("/analyze", response_model=AnalyzeResponse, responses=ERRORS, openapi_extra=IMAGE_BODY)
    async def analyze(
        request: Request,
        params: TrackOptions,
        detect: Detect = None,
        recommend: Annotated[
            RecommendMode,
            Query(
                description=(
                    "auto: tracks only when the session's stable emotion changed "
                    "(every time without a session)"
                )
            ),
        ] = RecommendMode.auto,
        session: Annotated[str | None, Query(max_length=128)] = None,
        x_session_id: Annotated[str | None, Header(max_length=128)] = None,
    ) -> dict[str, Any]:
        gw = gateway(request)
        body = await gw.read_upload(request)
        # The emotion in the params is replaced by the session's stable emotion.
        return await gw.analyze(
            body,
            request.headers.get("content-type"),
            detect,
            x_session_id or session,
            params,
            recommend,
            request.state.request_id,
        )

    app.mount("/", StaticFiles(directory=settings.frontend_dir, html=True), name="frontend")
    return app

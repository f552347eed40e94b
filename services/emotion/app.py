"""Emotion service (port 8001): POST /predict finds every face in an image and reads its emotion."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from services.common.contracts import ErrorResponse, PredictResponse
from services.common.errors import ApiError
from services.common.observability import instrument
from services.emotion import metrics
from services.emotion.imaging import ACCEPTED, SUPPORTED_MEDIA_TYPES
from services.emotion.pipeline import EmotionPipeline, parse_boxes
from services.emotion.settings import EmotionSettings
from services.emotion.upload import BOXES_FIELD, FIELD, read_upload

log = logging.getLogger("moodtunes.emotion")

_IMAGE_SCHEMA = {"type": "string", "format": "binary"}
_ERRORS: dict[int | str, dict] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        413: "upload or pixel count over the limit",
        415: f"not {ACCEPTED}",
        422: "empty, undecodable or truncated image",
        503: "model not loaded",
    }.items()
}
# The body is read by hand (see upload.py), so OpenAPI is told what it accepts.
_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FIELD],
                    "properties": {
                        FIELD: _IMAGE_SCHEMA,
                        BOXES_FIELD: {
                            "type": "string",
                            "description": "optional, live video: the previous "
                            "frame's faces[].box as a JSON list; only the region "
                            "around them is searched (see `region`)",
                        },
                    },
                }
            },
            **{media: {"schema": _IMAGE_SCHEMA} for media in sorted(SUPPORTED_MEDIA_TYPES)},
        },
    }
}


async def predict(
    request: Request,
    detect: bool = Query(True, description="false: the whole image is one face crop"),
) -> Response:
    pipeline: EmotionPipeline | None = request.app.state.pipeline
    if pipeline is None:
        raise ApiError(503, "emotion model not loaded")
    upload = await read_upload(request, pipeline.settings.max_upload_bytes)
    hint = None
    if upload.boxes is not None:
        if not detect:
            raise ApiError(422, f"'{BOXES_FIELD}' needs face detection: drop detect=false")
        hint = parse_boxes(upload.boxes, pipeline.settings.max_faces)
    # ONNX Runtime and OpenCV release the GIL: frames run in parallel on the thread pool.
    response = await run_in_threadpool(pipeline.predict, upload.image, detect, hint)
    metrics.record(response)
    # Serialised by pydantic directly: FastAPI's own path would validate the model again through
    # dicts, on every frame (response_model still documents the schema).
    return Response(response.model_dump_json(), media_type="application/json")


def create_app(settings: EmotionSettings | None = None) -> FastAPI:
    """The service; settings default to the environment (EMOTION_*), read at startup.
    The model is loaded once per process, at startup; a model that breaks the contract stops it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings or EmotionSettings()
        try:
            app.state.pipeline = EmotionPipeline(current)
        except Exception:
            log.exception("emotion service cannot start (model %s)", current.model_path)
            raise
        log.info(
            "emotion model %s loaded, input %s, %d thread(s)",
            app.state.pipeline.classifier.name,
            app.state.pipeline.classifier.size,
            current.threads,
        )
        yield
        app.state.pipeline = None

    app = FastAPI(title="moodtunes emotion", version="1.0", lifespan=lifespan)
    app.state.pipeline = None
    instrument(app, "emotion", lambda: app.state.pipeline is not None)
    app.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        response_model=PredictResponse,
        responses=_ERRORS,
        openapi_extra=_PREDICT_BODY,
    )
    return app

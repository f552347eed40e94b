"""The emotion service's route: thin, the work is the pipeline's (pipeline.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool

from services.common.contracts import PredictResponse
from services.common.errors import ApiError, error_responses
from services.common.params import ready_state
from services.common.upload import BOXES_FIELD, IMAGE_BODY, UPLOAD_ERRORS, UploadBody, image_fields
from services.emotion import metrics
from services.emotion.pipeline import EmotionPipeline, parse_boxes

router = APIRouter()

ERRORS = error_responses({**UPLOAD_ERRORS, 503: "model not loaded"})
Pipeline = Annotated[
    EmotionPipeline, Depends(ready_state("pipeline", EmotionPipeline, "emotion model not loaded"))
]


@router.post("/predict", response_model=PredictResponse, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def predict(
    pipeline: Pipeline,
    body: UploadBody,
    detect: Annotated[bool, Query(description="false: the whole image is one face crop")] = True,
) -> Response:
    upload = image_fields(body, pipeline.settings.max_upload_bytes)
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

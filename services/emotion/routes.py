"""The emotion service's route: thin, the work is the pipeline's (pipeline.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.common.contracts import OnDeviceManifest, PredictResponse
from services.common.errors import InvalidRequest, NotFound, error_responses
from services.common.limits import drain
from services.common.params import ready_state
from services.common.upload import BOXES_FIELD, IMAGE_BODY, UPLOAD_ERRORS, UploadBody, image_fields
from services.emotion import metrics
from services.emotion.pipeline import EmotionPipeline, parse_boxes

router = APIRouter()

ERRORS = error_responses({**UPLOAD_ERRORS, 503: "model not loaded, or busy (Retry-After)"})
Pipeline = Annotated[EmotionPipeline, Depends(ready_state(EmotionPipeline, "emotion model not loaded"))]


async def frame_slot(pipeline: Pipeline, request: Request) -> AsyncIterator[None]:
    """Admits the frame before its body is kept (503 at once when full); released when it is done."""
    if not pipeline.admission.free():
        await drain(request.receive)  # so that the 503 reaches the client (limits.DRAIN_MAX_BYTES)
        raise pipeline.admission.busy()
    pipeline.admission.enter()
    try:
        yield
    finally:
        pipeline.admission.leave()


Admitted = Annotated[None, Depends(frame_slot)]


@router.post("/predict", response_model=PredictResponse, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def predict(
    pipeline: Pipeline,
    _: Admitted,
    body: UploadBody,
    detect: Annotated[bool, Query(description="false: the whole image is one face crop")] = True,
) -> Response:
    upload = image_fields(body, pipeline.settings.max_upload_bytes)
    hint = None
    if upload.boxes is not None:
        if not detect:
            raise InvalidRequest(f"'{BOXES_FIELD}' needs face detection: drop detect=false")
        hint = parse_boxes(upload.boxes, pipeline.settings.detect.max_faces)
    # ONNX Runtime and OpenCV release the GIL: frames run in parallel on the admission's workers.
    response = await pipeline.admission.run(pipeline.predict, upload.image, detect, hint)
    metrics.record(response)
    # Serialised by pydantic directly: FastAPI's own path would validate the model again through
    # dicts, on every frame (response_model still documents the schema).
    return Response(response.model_dump_json(), media_type="application/json")


@router.get("/models", response_model=OnDeviceManifest, responses=error_responses({503: "model not loaded"}))
async def models(pipeline: Pipeline) -> OnDeviceManifest:
    """The graphs this service runs, by content-addressed name, and the settings around them: the
    gateway serves them to the page's on-device mode."""
    return pipeline.ondevice()


@router.get(
    "/models/{name}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **error_responses({404: "no such graph"})},
)
async def model_file(pipeline: Pipeline, name: str) -> Response:
    graph = next((g for g in pipeline.graphs.values() if g.name == name), None)
    if graph is None:
        raise NotFound(f"no graph named {name!r}: GET /models lists them")
    return Response(graph.data, media_type="application/octet-stream", headers={"ETag": f'"{graph.sha256}"'})

"""Property-based API tests from each service's own OpenAPI schema (schemathesis, against the running
processes): no 5xx, and every status code, content type and body conforms to the schema.
Image bodies are real encoded pictures (tests/pictures.py) as often as arbitrary bytes, so answers with
faces are checked against the schema too, not only refusals.
Bounded: a fixed number of derandomized examples per operation."""

from __future__ import annotations

import io

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.emotion.app import create_app as emotion_app
from services.gateway.app import create_app as gateway_app
from services.recommender.app import create_app as recommender_app
from tests.integration.stack import Stack
from tests.pictures import FORMATS, encoded, pictures

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
BOUNDED = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


# Every image upload in the schemas is a `format: binary` string (a multipart field) or an image/* body.
schemathesis.openapi.format("binary", st.one_of(pictures().map(lambda p: p.data), st.binary()))
for _fmt, _media_type in FORMATS.items():
    schemathesis.openapi.media_type(_media_type, st.one_of(encoded(_fmt), st.binary()))
schemathesis.openapi.media_type("image/heif", st.one_of(encoded("HEIF"), st.binary()))


def _schema(app: FastAPI) -> schemathesis.BaseSchema:
    # The schema comes from the code (no server needed at collection); the requests go to the processes.
    return schemathesis.openapi.from_dict(app.openapi())


emotion = _schema(emotion_app())
recommender = _schema(recommender_app())
gateway = _schema(gateway_app())


@BOUNDED
@emotion.parametrize()
def test_emotion_service_conforms_to_its_schema(case: schemathesis.Case, stack: Stack) -> None:
    case.call_and_validate(base_url=stack.emotion, checks=CHECKS, timeout=30)


@BOUNDED
@recommender.parametrize()
def test_recommender_conforms_to_its_schema(case: schemathesis.Case, stack: Stack) -> None:
    case.call_and_validate(base_url=stack.recommender, checks=CHECKS, timeout=30)


@BOUNDED
@gateway.parametrize()
def test_gateway_conforms_to_its_schema(case: schemathesis.Case, stack: Stack) -> None:
    case.call_and_validate(base_url=stack.gateway, checks=CHECKS, timeout=30)


def decodes(body: object) -> bool:
    data = body.get("image") if isinstance(body, dict) else body
    data = getattr(data, "data", data)  # schemathesis wraps multipart bytes
    if not isinstance(data, bytes):
        return False
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except Exception:
        return False
    return True


def test_the_fuzzed_uploads_include_real_pictures() -> None:
    seen: list[bool] = []

    @settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(case=emotion["/predict"]["POST"].as_strategy())
    def draw(case: schemathesis.Case) -> None:
        seen.append(decodes(case.body))

    draw()
    assert sum(seen) >= len(seen) // 2, f"{sum(seen)} of {len(seen)} uploads are pictures"

"""Property-based API tests from each service's own OpenAPI schema (schemathesis, against the running
processes): no 5xx, and every status code, content type and body conforms to the schema.
Bounded: a fixed number of derandomized examples per operation."""

from __future__ import annotations

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.emotion.app import app as emotion_app
from services.gateway.app import app as gateway_app
from services.recommender.app import app as recommender_app
from tests.integration.stack import Stack

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
BOUNDED = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _schema(app: FastAPI) -> schemathesis.BaseSchema:
    # The schema comes from the code (no server needed at collection); the requests go to the processes.
    return schemathesis.openapi.from_dict(app.openapi())


emotion = _schema(emotion_app)
recommender = _schema(recommender_app)
gateway = _schema(gateway_app)


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

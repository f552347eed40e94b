"""Health, readiness, Prometheus metrics, request ids and JSON errors, the same for every service.

The metrics are counted here and served on a port of their own (services/launch.py: METRICS_PORTS), not
on the service's public one."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common import errors
from services.common.errors import RequestError, Status
from services.common.headers import SecurityHeaders, drop_docs
from services.common.limits import HttpLimits, HttpSettings
from services.common.logs import LogSettings, configure_logging

REQUEST_ID_HEADER = "X-Request-ID"
_RID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")  # ASGI header names are lower-case bytes
# A client's id is kept only if it is short visible ASCII: it is logged and forwarded to the backends, so
# anything else (a 200 KB value, control or non-ASCII bytes) would cost or break every hop after this one.
REQUEST_ID_MAX = 64
_VALID_RID = re.compile(rb"[\x21-\x7e]{1,%d}" % REQUEST_ID_MAX)
log = logging.getLogger("moodtunes")

REQUESTS = Counter("http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["service", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def request_id(raw: bytes | None) -> str:
    """The client's X-Request-ID when it is short visible ASCII, else a new one."""
    if raw is not None and _VALID_RID.fullmatch(raw):
        return raw.decode("ascii")
    return uuid.uuid4().hex


class _Observe:
    """Pure ASGI middleware: request id in and out, access metrics and one log line per request.

    Starlette's BaseHTTPMiddleware (`@app.middleware("http")`) runs every request through an extra task
    and memory streams; for a millisecond-scale route that overhead was a large share of the latency.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(dict(scope["headers"]).get(_RID_KEY))
        scope.setdefault("state", {})["request_id"] = rid  # what request.state.request_id reads
        status = 500  # what the client gets if the app raises before starting a response
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            path = getattr(scope.get("route"), "path", "unmatched")  # the router sets scope["route"]
            REQUESTS.labels(self.service, scope["method"], path, str(status)).inc()
            LATENCY.labels(self.service, path).observe(elapsed)
            if log.isEnabledFor(logging.INFO):  # skip formatting when nobody listens
                method, ms = scope["method"], round(elapsed * 1000, 1)
                fields = {"request_id": rid, "method": method, "route": path, "status": status, "ms": ms}
                log.info("%s %s %d %.1fms rid=%s", method, path, status, ms, rid, extra=fields)


def instrument(
    app: FastAPI,
    service: str,
    ready: Callable[[], bool],
    statuses: Mapping[type[RequestError], Status],
    reason: Callable[[], str] | None = None,
    logs: LogSettings | None = None,
) -> None:
    """Adds /healthz, /readyz, request-id propagation, access metrics, the HTTP limits
    (services/common/limits.py), security headers (headers.py) and JSON errors (the service's
    RequestErrors by `statuses`, its errors module's mapping, validation errors and the framework's own
    404/405 all answer `{"detail": ...}`), and configures logging from
    `logs` (the service's settings). `reason` says why the service is not ready (in /readyz's `reason`)."""
    if logs is not None:
        configure_logging(service, logs)
    http = HttpSettings()
    if not http.docs:
        drop_docs(app)
    # Added first, so it runs inside _Observe: shed and timed-out requests are counted and carry an id.
    app.add_middleware(HttpLimits, settings=http)
    app.add_middleware(_Observe, service=service)
    app.add_middleware(SecurityHeaders, docs=http.docs)
    errors.install(app, statuses)

    # Coroutines: FastAPI runs a plain function on the thread pool, a hop that costs more than these take.
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        if ready():
            return JSONResponse(status_code=200, content={"status": "ready"})
        content = {"status": "not ready"} | ({"reason": reason()} if reason else {})
        return JSONResponse(status_code=503, content=content)

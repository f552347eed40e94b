"""HTTP limits every service shares, so that one hostile or stalled client cannot slow, starve or break
anyone else.

The server (granian, whose HTTP/1 parser is hyper's; see services/__main__.py) enforces the size of the
request line and headers (431) and a deadline for them, which also closes idle keep-alive connections.
The middleware here adds what the server does not: a deadline for the whole request body (408, the
connection closed), a budget for the bytes of request bodies held at once, and a cap on requests in
flight. Past the budget or the cap a request is shed at once with 503 and Retry-After instead of waiting
in an unbounded queue. Health and readiness are never shed (metrics have a listener of their own).
"""

from __future__ import annotations

import asyncio
import re

import orjson
from granian.http import HTTP1Settings
from prometheus_client import Counter
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.errors import BodyTimeout, Busy

NEVER_SHED = frozenset({"/healthz", "/readyz"})

SHED = Counter("http_shed_total", "Requests answered 503 at once because the service was full", ["reason"])
BODY_TIMEOUTS = Counter("http_body_timeouts_total", "Requests whose body did not arrive within the deadline")


class HttpSettings(BaseSettings):
    """Every service's HTTP limits; each field can be set from the environment (MOODTUNES_HTTP_...)."""

    model_config = SettingsConfigDict(env_prefix="MOODTUNES_HTTP_")

    # The request line and all headers together; past it the server answers 431 and closes. Browsers
    # send a few KB; a 60 KB query string still fits.
    header_max_bytes: int = Field(default=64 * 1024, ge=8192)
    # From a connection's first byte (or the end of its previous response) to the end of the request's
    # headers; an idle keep-alive connection is closed after it too. Whole seconds, as the server wants
    # milliseconds up to 60 s.
    header_timeout_s: int = Field(default=10, ge=1, le=60)
    # The whole request body must arrive within this many seconds of the headers: 8 MB at 2.2 Mbit/s.
    body_timeout_s: float = Field(default=30.0, gt=0)
    # Bytes of request bodies that may be held at once (counted as they arrive; a request whose
    # Content-Length does not fit in what is left is shed before it is read).
    body_budget_bytes: int = Field(default=32 * 1024 * 1024, ge=1024 * 1024)
    # Requests in flight (health and readiness aside): enough for 24 live viewers at once, few
    # enough that an admitted frame does not wait seconds behind the others (reports/overload.md).
    max_concurrent: int = Field(default=32, ge=1)
    retry_after_s: int = Field(default=1, ge=1)  # the Retry-After of a shed request
    # The Swagger UI (/docs) and ReDoc (/redoc) pages: they load scripts from a CDN, so they are off
    # unless asked for; the schema is always at /openapi.json.
    docs: bool = False

    def http1(self) -> HTTP1Settings:
        """What the server enforces (services/launch.py)."""
        return HTTP1Settings(
            header_read_timeout=self.header_timeout_s * 1000, max_buffer_size=self.header_max_bytes
        )


# A shed request's body up to this size is read and dropped before the 503, so that the connection stays
# usable and the answer arrives: closing a socket with unread data resets it, and the client may then
# lose the answer it has not read yet. Bigger bodies are not worth reading; their connection is closed.
DRAIN_MAX_BYTES = 1024 * 1024
DRAIN_TIMEOUT_S = 2.0


async def drain(receive: Receive) -> bool:
    """Reads the rest of a request body and drops it; False if it did not end in DRAIN_TIMEOUT_S."""
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while True:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return message["type"] == "http.request"
    except TimeoutError:
        return False


async def answer_busy(scope: Scope, receive: Receive, send: Send, detail: str, retry_after_s: int) -> None:
    """503 with Retry-After, before the application reads the body."""
    declared = _declared_length(scope)
    keep = declared is not None and declared <= DRAIN_MAX_BYTES and await drain(receive)
    body = orjson.dumps({"detail": detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry_after_s).encode()),
    ]
    if not keep:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_DIGITS = re.compile(rb"[0-9]{1,15}")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if _DIGITS.fullmatch(value) else None
    return None


class HttpLimits:
    """Pure ASGI middleware: the body deadline, the body budget and the cap on requests in flight."""

    def __init__(self, app: ASGIApp, settings: HttpSettings | None = None) -> None:
        self.app = app
        self.settings = settings or HttpSettings()
        self.in_flight = 0
        self.body_bytes = 0  # reserved from the budget by requests in flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in NEVER_SHED:
            await self.app(scope, receive, send)
            return
        s = self.settings
        if self.in_flight >= s.max_concurrent:
            SHED.labels("concurrency").inc()
            detail = "busy: too many requests in progress, retry shortly"
            await answer_busy(scope, receive, send, detail, s.retry_after_s)
            return
        declared = _declared_length(scope) or 0
        if declared and self.body_bytes + declared > s.body_budget_bytes:
            SHED.labels("body_budget").inc()
            detail = "busy: too many uploads in progress, retry shortly"
            await answer_busy(scope, receive, send, detail, s.retry_after_s)
            return
        self.in_flight += 1
        # Bytes count as they arrive, not as declared: a client that declares 8 MB and sends nothing
        # holds no share of the budget.
        reserved = 0
        deadline = asyncio.get_running_loop().time() + s.body_timeout_s
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done, reserved
            if body_done:  # only a disconnect is left to wait for, as long as it takes
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                BODY_TIMEOUTS.inc()
                raise BodyTimeout(
                    f"request body not received within {s.body_timeout_s:g} s", close=True
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            received = len(message.get("body", b""))
            if received:
                if self.body_bytes + received > s.body_budget_bytes:
                    SHED.labels("body_budget").inc()
                    raise Busy(
                        "busy: too many uploads in progress, retry shortly",
                        retry_after_s=s.retry_after_s,
                        close=True,
                    )
                self.body_bytes += received
                reserved += received
            return message

        try:
            await self.app(scope, timed_receive, send)
        finally:
            self.in_flight -= 1
            self.body_bytes -= reserved

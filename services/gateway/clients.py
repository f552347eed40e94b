"""Pooled HTTP clients for the emotion service and the recommender, both through httpx's API.

Every failure becomes a BackendError (errors.py gives its status): a backend that cannot be reached,
times out or says it is not ready is BackendUnavailable naming it; its 4xx answers are BackendRejected
with its status and detail, passed on; its other 5xx are BackendFailed. Only the idempotent
GET /recommend is retried (connection failures).

The emotion service gets every frame, so its requests go through httpx-aiohttp's transport (aiohttp's
connection pool and C HTTP parser under httpx's Request and Response): httpx's own transport (httpcore:
pure Python, and a pool that costs more the more requests are in flight) costs the gateway more CPU per
frame (`python -m bench.transports`, reports/transports.md). The recommender, asked once per emotion
change and cached, keeps httpx's own transport for its connection retries, which httpx-aiohttp does not
offer."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from services.common.errors import RequestError
from services.common.observability import REQUEST_ID_HEADER
from services.common.params import RecommendParams
from services.common.upload import Body
from services.gateway.settings import EmotionBackend, RecommenderBackend

log = logging.getLogger("moodtunes.gateway.clients")
LIMITS = httpx.Limits(max_connections=50, max_keepalive_connections=20)


class BackendError(RequestError):
    """A backend's failure, answered as the gateway's own."""


class BackendUnavailable(BackendError):
    """The backend cannot be reached, did not answer in time, sheds load or is not ready."""


class BackendFailed(BackendError):
    """The backend answered with an error of its own."""


class BackendRejected(BackendError):
    """The backend refused the request as the client's mistake: `answered` is the status it answered
    with, which the gateway passes on."""

    def __init__(self, message: str, answered: int) -> None:
        super().__init__(message)
        self.answered = answered


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:300]


def _timed_out(exc: httpx.HTTPError) -> bool:
    # httpx-aiohttp names every aiohttp connection error a ConnectTimeout (a refused connection too);
    # aiohttp's own timeouts are TimeoutErrors.
    if isinstance(exc.__cause__, aiohttp.ClientError):
        return isinstance(exc.__cause__, TimeoutError)
    return isinstance(exc, httpx.TimeoutException)


class Backend:
    def __init__(
        self,
        name: str,
        base_url: str,
        connect_timeout_s: float,
        read_timeout_s: float,
        transport: httpx.AsyncBaseTransport,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self.read_timeout_s = read_timeout_s
        # Ending in "/", so that a path prefix in the setting (http://host/emotion) stays in every URL.
        self.base = httpx.URL(base_url.rstrip("/") + "/")
        self.timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self.transport = transport

    async def request(
        self, method: str, path: str | httpx.URL, *, request_id: str, **kwargs: Any
    ) -> httpx.Response:
        headers = {REQUEST_ID_HEADER: request_id, **kwargs.pop("headers", {})}
        timeout = httpx.Timeout(kwargs.pop("timeout")) if "timeout" in kwargs else self.timeout
        url = path if isinstance(path, httpx.URL) else self.base.join(path.lstrip("/"))
        # What a client reads never names the backend's address; the log line does.
        try:
            # httpx's Request and Response straight on its transport: an AsyncClient's URL merging,
            # cookies, auth, redirects and hooks do nothing between our own services.
            request = httpx.Request(
                method, url, headers=headers, extensions={"timeout": timeout.as_dict()}, **kwargs
            )
            response = await self.transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            if _timed_out(exc):
                raise self._unavailable(
                    "no answer in time", f"{self.base_url}: {type(exc).__name__}", request_id
                ) from exc
            raise self._unavailable(
                "cannot be reached", f"{self.base_url}: {str(exc) or type(exc).__name__}", request_id
            ) from exc
        if response.status_code == 503:
            # The backend answered: it sheds load or is not ready yet, as it is built to (its own log
            # and metrics say why), so one line a shed frame would flood this log under overload.
            raise self._unavailable(
                _detail(response),
                self.base_url,
                request_id,
                response.headers.get("retry-after"),
                level=logging.INFO,
            )
        if response.status_code >= 500:
            log.warning("%s answered %d rid=%s", self.name, response.status_code, request_id)
            raise BackendFailed(f"{self.name} failed ({response.status_code}): {_detail(response)}")
        if response.status_code >= 400:
            raise BackendRejected(_detail(response), response.status_code)
        return response

    def _unavailable(
        self,
        reason: str,
        where: str,
        request_id: str,
        retry_after: str | None = None,
        level: int = logging.WARNING,
    ) -> BackendUnavailable:
        log.log(level, "%s unavailable rid=%s: %s (%s)", self.name, request_id, reason, where)
        # A backend that sheds load says when to come back; one that is down gets the same short pause.
        retry = int(retry_after) if retry_after and retry_after.isascii() and retry_after.isdigit() else 1
        return BackendUnavailable(f"{self.name} unavailable: {reason}", retry_after_s=retry)

    async def readiness(self, request_id: str, timeout_s: float = 1.0) -> str:
        """'ok', or why not: for the gateway's status endpoint."""
        try:
            await self.request("GET", "/readyz", request_id=request_id, timeout=timeout_s)
        except BackendError as exc:
            return exc.message
        return "ok"

    async def aclose(self) -> None:
        await self.transport.aclose()


class EmotionClient(Backend):
    def __init__(self, settings: EmotionBackend) -> None:
        # POST /predict is not retried: not idempotent by contract, and a retry doubles a slow CNN call.
        transport = AiohttpTransport(limits=LIMITS)
        super().__init__(
            "emotion service", settings.url, settings.connect_timeout_s, settings.timeout_s, transport
        )
        # Parsed once: httpx would otherwise join and parse the URL and its query on every frame.
        predict = self.base.join("predict")
        self._predict_url: dict[bool | None, httpx.URL] = {
            None: predict,
            **{detect: predict.copy_add_param("detect", str(detect).lower()) for detect in (True, False)},
        }

    async def predict(self, upload: Body, detect: bool | None, request_id: str) -> bytes:
        """The emotion service's answer to the upload, as the JSON bytes it sent."""
        # Passed on as the client's bytes (ASGI decodes headers as latin-1): the emotion service judges
        # it, and a non-ASCII value cannot fail here.
        headers = {"Content-Type": upload.content_type.encode("latin-1")}
        url = self._predict_url[detect]
        response = await self.request(
            "POST", url, request_id=request_id, content=upload.data, headers=headers
        )
        return response.content


class RecommenderClient(Backend):
    def __init__(self, settings: RecommenderBackend) -> None:
        transport = httpx.AsyncHTTPTransport(retries=settings.retries, limits=LIMITS)
        super().__init__(
            "recommender", settings.url, settings.connect_timeout_s, settings.timeout_s, transport
        )

    async def recommend(self, params: RecommendParams, request_id: str) -> bytes:
        """The recommender's answer, as the JSON bytes it sent."""
        response = await self.request("GET", "/recommend", request_id=request_id, params=params.query())
        return response.content

    async def circumplex_map(self, params: RecommendParams, request_id: str) -> bytes:
        response = await self.request("GET", "/recommend/map", request_id=request_id, params=params.query())
        return response.content

"""The gateway in front of the real emotion service and recommender: proxying, /analyze, errors passed
through, backends down, upload limits, request ids."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from services.common.contracts import AnalyzeResponse, PredictResponse, RecommendMap, RecommendResponse
from services.common.upload import MULTIPART_OVERHEAD
from services.gateway.pipeline import Gateway
from services.gateway.settings import GatewaySettings
from services.launch import metrics_url
from tests.fixtures import REDIS_TEST_URL
from tests.gateway.conftest import GatewayFactory, metric
from tests.gateway.faults import busy_url, closed_url, failing_url, hanging_url


@pytest.fixture()
def gateway(make_gateway: GatewayFactory, emotion_url: str, recommender_url: str) -> Iterator[TestClient]:
    with make_gateway(emotion_url=emotion_url, recommender_url=recommender_url) as client:
        yield client


def jpeg(client: TestClient, body: bytes, path: str = "/predict", **params: str) -> httpx.Response:
    return client.post(path, content=body, params=params, headers={"Content-Type": "image/jpeg"})


def test_predict_is_the_emotion_services_answer(
    gateway: TestClient, emotion_url: str, face_jpeg: bytes
) -> None:
    direct = httpx.post(f"{emotion_url}/predict", files={"image": ("a.jpg", face_jpeg, "image/jpeg")}).json()
    multipart = gateway.post("/predict", files={"image": ("a.jpg", face_jpeg, "image/jpeg")})
    raw = jpeg(gateway, face_jpeg)
    for answer in (multipart, raw):
        assert answer.status_code == 200
        body = PredictResponse.model_validate(answer.json())
        assert len(body.faces) == 1
        assert answer.json()["faces"] == direct["faces"]


def test_predict_passes_detect_through(gateway: TestClient, face_jpeg: bytes) -> None:
    whole = jpeg(gateway, face_jpeg, detect="false").json()
    assert whole["faces"][0]["box"] == {"x": 0, "y": 0, "w": whole["width"], "h": whole["height"]}


def test_recommend_proxies(gateway: TestClient) -> None:
    answer = gateway.get("/recommend", params={"emotion": "sad", "limit": 3, "strategy": "lift"})
    assert answer.status_code == 200
    body = RecommendResponse.model_validate(answer.json())
    assert (body.emotion.value, body.strategy.value, len(body.tracks)) == ("sad", "lift", 3)
    excluded = ",".join(t.id for t in body.tracks)
    again = gateway.get(
        "/recommend", params={"emotion": "sad", "limit": 3, "strategy": "lift", "exclude": excluded}
    ).json()
    assert not {t["id"] for t in again["tracks"]} & {t.id for t in body.tracks}


def test_recommend_map_proxies(gateway: TestClient) -> None:
    params = {"emotion": "angry", "limit": 4, "strategy": "lift"}
    answer = gateway.get("/recommend/map", params=params)
    assert answer.status_code == 200, answer.text
    body = RecommendMap.model_validate(answer.json())
    listed = [t["id"] for t in gateway.get("/recommend", params=params).json()["tracks"]]
    assert [t.id for t in body.tracks] == listed and len(body.regions) > 1
    assert gateway.get("/recommend/map", params={"emotion": "joy"}).status_code == 422


def test_analyze_without_session_recommends_for_the_face(gateway: TestClient, face_jpeg: bytes) -> None:
    answer = gateway.post(
        "/analyze", files={"image": ("a.jpg", face_jpeg, "image/jpeg")}, params={"limit": 4}
    )
    assert answer.status_code == 200
    body = AnalyzeResponse.model_validate(answer.json())
    assert body.faces and body.emotion == body.faces[0].emotion == body.stable_emotion
    assert body.tracks_updated and len(body.tracks) == 4 and body.recommender_error is None


def test_analyze_auto_fetches_tracks_only_when_something_changed(
    gateway: TestClient, face_jpeg: bytes
) -> None:
    def frame(**params: str) -> dict:
        return jpeg(gateway, face_jpeg, "/analyze", limit="3", **params).json()

    fetched0 = metric("gateway_analyze_recommend_total", outcome="fetched")
    first = frame(session="tab-1")
    second = frame(session="tab-1")
    lift = frame(session="tab-1", strategy="lift")
    forced = frame(session="tab-1", strategy="lift", recommend="always")
    off = frame(session="tab-1", strategy="lift", recommend="never")
    other_tab = jpeg(gateway, face_jpeg, "/analyze", limit="3").json()  # no session: always fetched
    by_header = gateway.post(
        "/analyze",
        content=face_jpeg,
        params={"limit": 3},
        headers={"Content-Type": "image/jpeg", "X-Session-ID": "tab-1"},
    ).json()
    fetched = metric("gateway_analyze_recommend_total", outcome="fetched") - fetched0

    assert [f["tracks_updated"] for f in (first, second, lift, forced, off, other_tab)] == [
        True,
        False,
        True,
        True,
        False,
        True,
    ]
    assert len(first["tracks"]) == 3 and second["tracks"] == [] and off["tracks"] == []
    assert all(f["faces"] and f["stable_emotion"] == first["emotion"] for f in (second, lift, off))
    # The header names the same session: back to match, so the parameters changed again.
    assert by_header["tracks_updated"] is True
    assert fetched == 5


def test_analyze_no_face(gateway: TestClient) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 120, 200)).save(buf, "JPEG")
    body = jpeg(gateway, buf.getvalue(), "/analyze", session="empty").json()
    assert body["faces"] == [] and body["emotion"] is None and body["stable_emotion"] is None
    assert body["tracks"] == [] and body["tracks_updated"] is False and body["recommender_error"] is None


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status"),
    [
        ("/predict", b"just text", "text/plain", 415),
        ("/predict", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg", 422),
        ("/analyze", b"just text", "text/plain", 415),
    ],
)
def test_emotion_service_errors_pass_through(
    gateway: TestClient, emotion_url: str, path: str, body: bytes, content_type: str, status: int
) -> None:
    direct = httpx.post(f"{emotion_url}/predict", content=body, headers={"Content-Type": content_type})
    via = gateway.post(path, content=body, headers={"Content-Type": content_type})
    assert direct.status_code == via.status_code == status
    assert via.json() == direct.json()


@pytest.mark.parametrize(
    "params",
    [
        {"emotion": "happy", "limit": 0},
        {"emotion": "happy", "limit": 51},
        {"emotion": "happy", "exclude": "x"},
    ],
)
def test_recommender_errors_pass_through(gateway: TestClient, recommender_url: str, params: dict) -> None:
    direct = httpx.get(f"{recommender_url}/recommend", params=params)
    via = gateway.get("/recommend", params=params)
    assert direct.status_code == via.status_code == 422
    assert via.json() == direct.json()


def test_analyze_passes_recommender_422_through(
    gateway: TestClient, recommender_url: str, face_jpeg: bytes
) -> None:
    direct = httpx.get(f"{recommender_url}/recommend", params={"emotion": "happy", "limit": 0})
    via = jpeg(gateway, face_jpeg, "/analyze", limit="0")
    assert via.status_code == 422 and via.json() == direct.json()


def test_unknown_emotion_names_the_valid_ones(gateway: TestClient) -> None:
    answer = gateway.get("/recommend", params={"emotion": "joy"})
    assert answer.status_code == 422
    assert all(e in answer.json()["detail"] for e in ("angry", "neutral", "surprise"))


def test_upload_limit_refuses_before_forwarding(
    make_gateway: GatewayFactory, emotion_url: str, emotion_metrics_port: int, face_jpeg: bytes
) -> None:
    def emotion_predicts() -> float:
        text = httpx.get(metrics_url(emotion_metrics_port)).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("http_requests_total{") and 'route="/predict"' in line
        )

    before = emotion_predicts()
    with make_gateway(
        emotion_url=emotion_url, recommender_url=closed_url(), max_upload_bytes=len(face_jpeg) - 1
    ) as client:
        declared = jpeg(client, face_jpeg)
        # A streamed body has no Content-Length: the gateway counts while reading.
        streamed = client.post(
            "/analyze",
            content=iter([face_jpeg[:1000], face_jpeg[1000:]]),
            headers={"Content-Type": "image/jpeg"},
        )
        multipart = client.post(
            # Over the limit by more than the multipart allowance (the image part is not parsed here).
            "/predict",
            files={"image": ("a.jpg", face_jpeg + b"\0" * (MULTIPART_OVERHEAD + 1), "image/jpeg")},
        )
    for answer in (declared, streamed, multipart):
        assert answer.status_code == 413
        assert answer.json()["detail"] == f"upload too large: the limit is {len(face_jpeg) - 1} bytes"
    assert emotion_predicts() == before


def test_backends_down_give_503_quickly(make_gateway: GatewayFactory, face_jpeg: bytes) -> None:
    with make_gateway(emotion_url=closed_url(), recommender_url=closed_url()) as client:
        started = time.monotonic()
        predict = jpeg(client, face_jpeg)
        analyze = jpeg(client, face_jpeg, "/analyze")
        recommend = client.get("/recommend", params={"emotion": "happy"})
        elapsed = time.monotonic() - started
        status = client.get("/api/status").json()
    assert predict.status_code == analyze.status_code == recommend.status_code == 503
    assert predict.json()["detail"].startswith("emotion service unavailable: cannot be reached")
    assert analyze.json()["detail"].startswith("emotion service unavailable")
    assert recommend.json()["detail"].startswith("recommender unavailable: cannot be reached")
    assert status["emotion"].startswith("emotion service unavailable")
    assert status["recommender"].startswith("recommender unavailable")
    assert elapsed < 5


def test_a_shedding_backend_is_passed_on_quietly_and_a_dead_one_loudly(
    make_gateway: GatewayFactory, face_jpeg: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A 503 the emotion service answered (load shedding) reaches the client with its Retry-After and
    logs at INFO, so an overload does not write a warning per shed frame; a backend that cannot be
    reached is a warning."""
    with (
        caplog.at_level(logging.INFO, logger="moodtunes.gateway.clients"),
        busy_url() as busy,
        make_gateway(emotion_url=busy, recommender_url=closed_url()) as client,
    ):
        shed = jpeg(client, face_jpeg)
        down = client.get("/recommend", params={"emotion": "happy"})
    assert shed.status_code == 503 and shed.headers["retry-after"] == "7"
    assert shed.json()["detail"] == "emotion service unavailable: busy: no worker free"
    assert down.status_code == 503
    clients = [r for r in caplog.records if r.name == "moodtunes.gateway.clients"]
    levels = {r.getMessage().split(" unavailable")[0]: r.levelno for r in clients}
    assert levels == {"emotion service": logging.INFO, "recommender": logging.WARNING}, levels


def test_hanging_backend_times_out_as_503(make_gateway: GatewayFactory, face_jpeg: bytes) -> None:
    with (
        hanging_url() as hanging,
        make_gateway(
            emotion_url=hanging,
            recommender_url=hanging,
            emotion={"timeout_s": 0.5},
            recommender={"timeout_s": 0.5, "retries": 0},
        ) as client,
    ):
        predict = jpeg(client, face_jpeg)
        recommend = client.get("/recommend", params={"emotion": "happy"})
    assert predict.status_code == recommend.status_code == 503
    assert "no answer" in predict.json()["detail"] and "no answer" in recommend.json()["detail"]


def test_backend_500_is_a_502(make_gateway: GatewayFactory, face_jpeg: bytes) -> None:
    with failing_url() as failing, make_gateway(emotion_url=failing, recommender_url=failing) as client:
        predict = jpeg(client, face_jpeg)
        recommend = client.get("/recommend", params={"emotion": "happy"})
    assert predict.status_code == recommend.status_code == 502
    assert predict.json()["detail"] == "emotion service failed (500): internal trouble"


def test_analyze_survives_the_recommender_being_down(
    make_gateway: GatewayFactory, emotion_url: str, face_jpeg: bytes
) -> None:
    with make_gateway(emotion_url=emotion_url, recommender_url=closed_url()) as client:
        first = jpeg(client, face_jpeg, "/analyze", session="s").json()
        second = jpeg(client, face_jpeg, "/analyze", session="s").json()
    for body in (first, second):
        # Still faces and emotions; tracks are retried on the next frame, not marked as delivered.
        assert body["faces"] and body["emotion"] and body["tracks"] == []
        assert body["recommender_error"].startswith("recommender unavailable")


def test_analyze_refuses_a_new_session_past_the_redis_cap_as_json_with_retry_after(
    make_gateway: GatewayFactory, emotion_url: str, recommender_url: str, face_jpeg: bytes, redis_prefix: str
) -> None:
    redis = {"redis": {"url": REDIS_TEST_URL, "prefix": redis_prefix, "new_sessions_max": 1}}
    with make_gateway(emotion_url=emotion_url, recommender_url=recommender_url, **redis) as client:
        viewer = jpeg(client, face_jpeg, "/analyze", session="viewer")
        newcomer = jpeg(client, face_jpeg, "/analyze", session="newcomer")
        again = jpeg(client, face_jpeg, "/analyze", session="viewer")
        shed = metric("http_shed_total", reason="sessions")
    assert viewer.status_code == again.status_code == 200 and again.json()["faces"]
    assert newcomer.status_code == 503, newcomer.text
    assert newcomer.json() == {"detail": "busy: too many new sessions, retry later"}
    assert 0 < int(newcomer.headers["retry-after"]) <= GatewaySettings().sessions.ttl_s
    assert shed >= 1


def test_analyze_backs_off_a_hanging_recommender(
    make_gateway: GatewayFactory, emotion_url: str, face_jpeg: bytes
) -> None:
    """One frame waits for the recommender's timeout; the next frames skip it and still report why."""
    with (
        hanging_url() as hanging,
        make_gateway(
            emotion_url=emotion_url,
            recommender_url=hanging,
            recommender={"timeout_s": 0.5, "retries": 0, "backoff_s": 60},
        ) as client,
    ):
        failed0 = metric("gateway_analyze_recommend_total", outcome="failed")
        backoff0 = metric("gateway_analyze_recommend_total", outcome="backoff")
        frames = [jpeg(client, face_jpeg, "/analyze", session="s").json() for _ in range(3)]
        failed = metric("gateway_analyze_recommend_total", outcome="failed") - failed0
        backoff = metric("gateway_analyze_recommend_total", outcome="backoff") - backoff0
        # An explicit /recommend still asks (and waits for) the recommender.
        explicit = client.get("/recommend", params={"emotion": "happy"})
    assert (failed, backoff) == (1, 2)
    assert all(f["faces"] and "no answer" in f["recommender_error"] for f in frames)
    assert explicit.status_code == 503 and "no answer" in explicit.json()["detail"]


def test_recommend_survives_the_emotion_service_being_down(
    make_gateway: GatewayFactory, recommender_url: str
) -> None:
    with make_gateway(emotion_url=closed_url(), recommender_url=recommender_url) as client:
        assert client.get("/recommend", params={"emotion": "happy", "limit": 2}).status_code == 200


def test_request_id_reaches_the_backends(gateway: TestClient, face_jpeg: bytes) -> None:
    """The real backends echo the X-Request-ID they received; a transport wrapped around the gateway's
    own reads what came back."""
    seen: list[tuple[str, str | None]] = []

    class Recording(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            seen.append((request.url.path, response.headers.get("x-request-id")))
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    assert isinstance(gateway.app, FastAPI)  # TestClient types its app as any ASGI app
    gw: Gateway = gateway.app.state.pipeline
    for backend in (gw.emotion, gw.recommender):
        backend.transport = Recording(backend.transport)
    answer = gateway.post(
        "/analyze",
        content=face_jpeg,
        params={"recommend": "always"},
        headers={"Content-Type": "image/jpeg", "X-Request-ID": "rid-analyze-1"},
    )
    assert answer.headers["x-request-id"] == "rid-analyze-1"
    assert seen == [("/predict", "rid-analyze-1"), ("/recommend", "rid-analyze-1")]

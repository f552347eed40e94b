"""POST /api/mood, the endpoint of the page in on-device mode, in front of the real recommender: the
steady emotion is derived from the frames' probabilities (never taken from the page), tracks come and
degrade as /analyze's do, every malformed body is a 4xx with a message, and each session's rate is
limited."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.common.contracts import EMOTIONS, MoodResponse
from services.gateway.settings import GatewaySettings
from tests.fixtures import REDIS_TEST_URL
from tests.gateway.conftest import GatewayFactory, metric
from tests.gateway.faults import closed_url


def face(emotion: str, p: float = 0.7) -> list[float]:
    """Probabilities (EMOTIONS order) with `emotion` at p and the rest shared out."""
    rest = (1 - p) / (len(EMOTIONS) - 1)
    return [p if e == emotion else rest for e in EMOTIONS]


def window(*emotions: str) -> dict[str, Any]:
    return {"frames": [{"faces": [face(e)]} for e in emotions]}


@pytest.fixture()
def gateway(make_gateway: GatewayFactory, recommender_url: str) -> Iterator[TestClient]:
    # No emotion service: the page read the faces itself.
    with make_gateway(emotion_url=closed_url(), recommender_url=recommender_url) as client:
        yield client


def mood(client: TestClient, body: Any, session: str | None = "s", **params: Any) -> httpx.Response:
    headers = {"X-Session-ID": session} if session else {}
    return client.post("/api/mood", json=body, params=params, headers=headers)


def test_emotions_say_the_steadiness_rule_the_page_runs(gateway: TestClient) -> None:
    settings = GatewaySettings()
    assert gateway.get("/api/emotions").json()["steadiness"] == {
        "window": settings.steadiness.window,
        "votes": settings.steadiness.votes,
    }


def test_a_window_gets_its_steady_emotion_and_tracks_once(gateway: TestClient) -> None:
    first = mood(gateway, window("sad"))
    assert first.status_code == 200, first.text
    body = MoodResponse.model_validate(first.json())
    assert body.stable_emotion == "sad" and body.tracks_updated and len(body.tracks) == 10
    assert body.recommender_error is None
    # The same again (auto): nothing changed, no tracks; always: tracks again; never: none.
    again = mood(gateway, window("sad", "sad")).json()
    assert (again["stable_emotion"], again["tracks_updated"], again["tracks"]) == ("sad", False, [])
    always = mood(gateway, window("sad"), recommend="always").json()
    assert always["tracks_updated"] and len(always["tracks"]) == 10
    assert mood(gateway, window("sad"), recommend="never").json()["tracks"] == []
    # Another choice of tracks (strategy, limit) is a change.
    lifted = mood(gateway, window("sad"), strategy="lift", limit=5).json()
    assert lifted["tracks_updated"] and len(lifted["tracks"]) == 5


def test_the_steady_emotion_follows_the_rule_not_a_single_frame(gateway: TestClient) -> None:
    assert mood(gateway, window("happy")).json()["stable_emotion"] == "happy"
    # 2 sad of 3: not enough votes (3 of the window of 5); the third one switches it.
    assert mood(gateway, window("happy", "sad", "sad")).json()["stable_emotion"] == "happy"
    switched = mood(gateway, window("happy", "sad", "sad", "sad")).json()
    assert switched["stable_emotion"] == "sad" and switched["tracks_updated"]
    # Only the largest (first) face counts, as in /analyze.
    two = {"frames": [{"faces": [face("sad"), face("angry", 0.99)]}]}
    assert mood(gateway, two, session="other").json()["stable_emotion"] == "sad"


def test_sessions_are_separate_and_may_come_as_a_parameter(gateway: TestClient) -> None:
    assert mood(gateway, window("happy"), session="a").json()["stable_emotion"] == "happy"
    by_param = gateway.post("/api/mood", json=window("sad"), params={"session": "b"})
    assert by_param.json()["stable_emotion"] == "sad"
    assert mood(gateway, window("sad"), session="a").json()["stable_emotion"] == "happy"


def test_the_recommender_down_leaves_the_steady_emotion_and_says_why(
    make_gateway: GatewayFactory,
) -> None:
    backoff0 = metric("gateway_mood_recommend_total", outcome="backoff")
    with make_gateway(emotion_url=closed_url(), recommender_url=closed_url()) as client:
        answers = [mood(client, window("sad")).json() for _ in range(2)]
    backoff = metric("gateway_mood_recommend_total", outcome="backoff") - backoff0
    for body in answers:
        assert body["stable_emotion"] == "sad" and body["tracks"] == [] and not body["tracks_updated"]
        assert body["recommender_error"].startswith("recommender unavailable")
    assert backoff == 1  # the second did not wait for it again


def test_the_recommender_refusing_the_query_is_the_clients_422(gateway: TestClient) -> None:
    resp = mood(gateway, window("sad"), limit=0)
    assert resp.status_code == 422 and "limit" in resp.json()["detail"]


def nan_body(text: str) -> bytes:
    """A window whose first probability is written as `text` (JSON has no NaN; Python's parser does)."""
    values = ", ".join([text, *(str(p) for p in face("sad")[1:])])
    return f'{{"frames": [{{"faces": [[{values}]]}}]}}'.encode()


BAD: dict[str, tuple[Any, str]] = {
    "six probabilities": ({"frames": [{"faces": [face("sad")[:6]]}]}, "at least 7 items"),
    "eight probabilities": ({"frames": [{"faces": [[*face("sad"), 0.0]]}]}, "at most 7 items"),
    "sum 0.5": ({"frames": [{"faces": [[p / 2 for p in face("sad")]]}]}, "sum to 0.5, not 1"),
    "sum 2": ({"frames": [{"faces": [[0.5, 0.5, 0.5, 0.5, 0, 0, 0]]}]}, "sum to 2, not 1"),
    "negative": ({"frames": [{"faces": [[-0.2, 0.2, 0, 1, 0, 0, 0]]}]}, "greater than or equal to 0"),
    "over 1": ({"frames": [{"faces": [[1.5, -0.5, 0, 0, 0, 0, 0]]}]}, "less than or equal to 1"),
    "a string": ({"frames": [{"faces": [["sad", 0, 0, 0, 1, 0, 0]]}]}, "valid number"),
    "no frames": ({"frames": []}, "frames: List should have at least 1 item"),
    "no faces": ({"frames": [{"faces": []}]}, "faces: List should have at least 1 item"),
    "too many faces": ({"frames": [{"faces": [face("sad")] * 21}]}, "at most 20 items"),
    "too many frames": (window(*["sad"] * 6), "frames: at most 5 (the steadiness window"),
    "far too many frames": (window(*["sad"] * 101), "at most 100 items"),
    "an unknown field": ({**window("sad"), "stable_emotion": "happy"}, "Extra inputs are not permitted"),
    "a bare label": ({"stable_emotion": "happy"}, "frames: Field required"),
    "not an object": ([1, 2, 3], "valid dictionary"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_malformed_window_is_a_422_that_says_what_is_wrong(gateway: TestClient, case: str) -> None:
    body, message = BAD[case]
    resp = mood(gateway, body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert message in resp.json()["detail"], resp.json()


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinite_probabilities_are_a_422(gateway: TestClient, text: str) -> None:
    resp = gateway.post(
        "/api/mood", content=nan_body(text), headers={"Content-Type": "application/json", "X-Session-ID": "s"}
    )
    assert resp.status_code == 422, resp.text
    assert "finite number" in resp.json()["detail"]


def test_other_bodies_are_refused_with_a_message(gateway: TestClient) -> None:
    headers = {"X-Session-ID": "s"}
    cases = {
        "not JSON": (b"{frames", "application/json", 422, "JSON decode error"),
        "an image": (b"\xff\xd8\xff\xe0", "image/jpeg", 415, "send application/json"),
        "no type": (json.dumps(window("sad")).encode(), "", 415, "send application/json"),
        "empty": (b"", "application/json", 422, "Field required"),
    }
    for name, (content, content_type, status, message) in cases.items():
        resp = gateway.post("/api/mood", content=content, headers={**headers, "Content-Type": content_type})
        assert resp.status_code == status, (name, resp.text)
        assert message in resp.json()["detail"], (name, resp.json())


def test_no_session_is_a_422(gateway: TestClient) -> None:
    resp = mood(gateway, window("sad"), session=None)
    assert resp.status_code == 422 and "session" in resp.json()["detail"]
    long = mood(gateway, window("sad"), session="x" * 129)
    assert long.status_code == 422


def test_an_oversized_body_is_a_413_declared_or_not(
    make_gateway: GatewayFactory, recommender_url: str
) -> None:
    with make_gateway(
        emotion_url=closed_url(), recommender_url=recommender_url, mood={"max_body_bytes": 2048}
    ) as client:
        big = json.dumps(window("sad") | {"pad": "x" * 4000}).encode()
        declared = client.post(
            "/api/mood", content=big, headers={"Content-Type": "application/json", "X-Session-ID": "s"}
        )
        streamed = client.post(
            "/api/mood",
            content=iter([big[:1000], big[1000:]]),  # chunked: no Content-Length to go by
            headers={"Content-Type": "application/json", "X-Session-ID": "s"},
        )
        fits = mood(client, window("sad"))
    for resp in (declared, streamed):
        assert resp.status_code == 413, resp.text
        assert resp.json() == {"detail": "body too large: the limit is 2048 bytes"}
    assert fits.status_code == 200


def test_probabilities_rounded_to_four_decimals_are_accepted(gateway: TestClient) -> None:
    rounded = [round(p, 4) for p in face("fear", 0.6)]  # sum 1.0002
    assert not math.isclose(sum(rounded), 1, abs_tol=1e-4)
    resp = mood(gateway, {"frames": [{"faces": [rounded]}]})
    assert resp.status_code == 200 and resp.json()["stable_emotion"] == "fear"


@pytest.mark.parametrize("shared", [False, True], ids=["in process", "redis"])
def test_a_sessions_rate_is_limited_with_retry_after(
    make_gateway: GatewayFactory, recommender_url: str, redis_prefix: str, shared: bool
) -> None:
    redis = {"redis": {"url": REDIS_TEST_URL, "prefix": redis_prefix}} if shared else {}
    limited0 = metric("gateway_mood_rate_limited_total")
    with make_gateway(
        emotion_url=closed_url(),
        recommender_url=recommender_url,
        mood={"rate_requests": 3, "rate_period_s": 60},
        **redis,
    ) as client:
        answers = [mood(client, window("sad")) for _ in range(4)]
        other = mood(client, window("happy"), session="other")
    limited = metric("gateway_mood_rate_limited_total") - limited0
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.json() == {"detail": "too many mood updates for this session: at most 3 per 60 s"}
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert other.status_code == 200 and limited == 1

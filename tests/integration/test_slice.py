"""The whole slice as real processes: a face photo goes through the gateway's /analyze (emotion service,
recommender) and comes back with tracks; a repeated /recommend is served from the real Redis."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from samples.images import astronaut_jpeg
from services.common.contracts import EMOTIONS, AnalyzeResponse, RecommendResponse
from tests.integration.stack import Stack, redis_db, running_stack

REDIS_DB = 7  # this test's own database: flushed before and after, nothing else touched
SPOTIFY_TRACK = re.compile(r"^https://open\.spotify\.com/track/[0-9A-Za-z]{22}$")


@pytest.fixture(scope="module")
def redis_client() -> Iterator[tuple[str, redis.Redis]]:
    with redis_db(REDIS_DB) as db:
        yield db


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_client: tuple[str, redis.Redis]) -> Iterator[Stack]:
    url, _ = redis_client
    with running_stack(Path(tmp_path_factory.mktemp("music")), url) as running:
        yield running


def cache_count(gateway_metrics: str, result: str) -> float:
    text = httpx.get(gateway_metrics, timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "gateway_recommend_cache_total"
                and sample.labels.get("backend") == "redis"
                and sample.labels.get("result") == result
            ):
                return sample.value
    return 0.0


def test_a_face_photo_becomes_an_emotion_and_spotify_tracks(stack: Stack) -> None:
    resp = httpx.post(
        f"{stack.gateway}/analyze",
        params={"limit": 8},
        files={"image": ("astronaut.jpg", astronaut_jpeg(), "image/jpeg")},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    body = AnalyzeResponse.model_validate(resp.json())
    assert len(body.faces) == 1
    face = body.faces[0]
    # The face is in the upper middle of the 512x512 photo, and not the whole image.
    assert 120 < face.box.x + face.box.w / 2 < 320 and 40 < face.box.y + face.box.h / 2 < 260
    assert face.box.w < 400
    assert set(face.probabilities) == set(EMOTIONS) and face.probabilities[face.emotion] == face.confidence
    assert body.emotion == face.emotion
    assert body.recommender_error is None
    assert len(body.tracks) == 8
    assert all(SPOTIFY_TRACK.match(t.url) and t.url.endswith(t.id) for t in body.tracks)
    assert len({t.id for t in body.tracks}) == 8


def test_a_repeated_recommendation_is_served_from_redis(
    stack: Stack, redis_client: tuple[str, redis.Redis]
) -> None:
    _, client = redis_client
    params: dict[str, str | int] = {"emotion": "sad", "limit": 6, "strategy": "lift", "seed": 11}
    keys_before = set(client.keys("*"))
    hits_before, misses_before = (
        cache_count(stack.metrics["gateway"], "hit"),
        cache_count(stack.metrics["gateway"], "miss"),
    )

    first = httpx.get(f"{stack.gateway}/recommend", params=params, timeout=10)
    assert first.status_code == 200, first.text
    assert first.headers["X-Cache"] == "miss"
    RecommendResponse.model_validate(first.json())
    assert cache_count(stack.metrics["gateway"], "miss") == misses_before + 1

    # The answer is now in Redis, under one new key, with an expiry.
    new_keys = set(client.keys("*")) - keys_before
    assert len(new_keys) == 1
    key = new_keys.pop()
    assert "sad" in key and "lift" in key
    assert 0 < client.ttl(key) <= 300
    cached = client.get(key)
    assert cached is not None
    assert json.loads(cached) == first.json()

    second = httpx.get(f"{stack.gateway}/recommend", params=params, timeout=10)
    assert second.status_code == 200
    assert second.headers["X-Cache"] == "hit"
    assert second.json() == first.json()
    assert cache_count(stack.metrics["gateway"], "hit") == hits_before + 1
    assert cache_count(stack.metrics["gateway"], "miss") == misses_before + 1

    # Served from Redis, not from memory: with the key gone the gateway must ask the recommender again.
    client.delete(key)
    third = httpx.get(f"{stack.gateway}/recommend", params=params, timeout=10)
    assert third.headers["X-Cache"] == "miss"
    assert third.json() == first.json()  # same seed, same list
    assert client.exists(key)

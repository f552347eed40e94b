"""The /recommend cache: keys cover every parameter, hits and misses are counted and checked in the
real Redis, and a Redis that is down costs nothing but the cache."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from services.common.contracts import Emotion, Strategy
from services.common.params import RecommendParams
from services.gateway.cache import cache_key
from tests.fixtures import REDIS_TEST_URL
from tests.gateway.conftest import GatewayFactory, metric
from tests.gateway.faults import closed_url, hanging_url

BASE = RecommendParams(Emotion.happy, 5, Strategy.match, (), None)


def key(**changes: Any) -> str:
    return cache_key("p:", replace(BASE, **changes))


@pytest.mark.parametrize(
    "change",
    [
        {"emotion": Emotion.sad},
        {"limit": 6},
        {"strategy": Strategy.lift},
        {"exclude": ("a" * 22,)},
        {"seed": 0},
        {"seed": 1},
    ],
)
def test_every_parameter_is_in_the_key(change: dict[str, object]) -> None:
    assert key(**change) != key()


def test_exclude_is_a_set_in_the_key() -> None:
    a, b = "A" * 22, "B" * 22
    assert key(exclude=(a, b)) == key(exclude=(b, a, b))
    assert key(exclude=(a,)) != key(exclude=(a, b))


def test_seed_none_and_zero_differ_and_prefix_applies() -> None:
    assert key(seed=None) != key(seed=0)
    assert key().startswith("p:recommend:")


def test_hits_and_misses_are_counted_and_stored_in_redis(
    make_gateway: GatewayFactory,
    emotion_url: str,
    recommender_url: str,
    redis_prefix: str,
    redis_client: redis.Redis,
) -> None:
    with make_gateway(
        emotion_url=emotion_url,
        recommender_url=recommender_url,
        redis={"url": REDIS_TEST_URL, "prefix": redis_prefix},
        cache={"ttl_s": 120},
    ) as client:
        hits0 = metric("gateway_recommend_cache_total", backend="redis", result="hit")
        misses0 = metric("gateway_recommend_cache_total", backend="redis", result="miss")
        params = {"emotion": "sad", "limit": 4, "strategy": "lift", "seed": 7}
        first = client.get("/recommend", params=params)
        second = client.get("/recommend", params=params)
        other = client.get("/recommend", params={**params, "seed": 8})
        hits = metric("gateway_recommend_cache_total", backend="redis", result="hit") - hits0
        misses = metric("gateway_recommend_cache_total", backend="redis", result="miss") - misses0

    assert [r.status_code for r in (first, second, other)] == [200, 200, 200]
    assert [r.headers["x-cache"] for r in (first, second, other)] == ["miss", "hit", "miss"]
    assert (hits, misses) == (1, 2)
    assert second.json() == first.json()

    stored = cache_key(redis_prefix, RecommendParams(Emotion.sad, 4, Strategy.lift, (), 7))
    cached = redis_client.get(stored)
    assert cached is not None
    assert json.loads(cached) == first.json()
    assert first.text == second.text == cached  # the recommender's bytes, kept and served as they are
    assert 0 < redis_client.ttl(stored) <= 120
    assert set(redis_client.scan_iter(f"{redis_prefix}*")) == {
        stored,
        cache_key(redis_prefix, RecommendParams(Emotion.sad, 4, Strategy.lift, (), 8)),
    }


@pytest.fixture()
def recommend_gateway(
    make_gateway: GatewayFactory, recommender_url: str, redis_prefix: str
) -> Iterator[TestClient]:
    """A gateway with only the recommender behind it, caching in the test Redis under its own prefix."""
    with make_gateway(
        emotion_url=closed_url(),
        recommender_url=recommender_url,
        redis={"url": REDIS_TEST_URL, "prefix": redis_prefix},
    ) as client:
        yield client


def test_a_hit_does_not_reach_the_recommender(
    recommend_gateway: TestClient, redis_prefix: str, redis_client: redis.Redis
) -> None:
    """A value planted in Redis under the key is what the gateway answers: proof it reads the cache."""
    planted = {"emotion": "fear", "strategy": "match", "tracks": []}
    redis_client.set(cache_key(redis_prefix, RecommendParams(Emotion.fear, 3)), json.dumps(planted))
    answer = recommend_gateway.get("/recommend", params={"emotion": "fear", "limit": 3})
    assert answer.json() == planted


def test_errors_are_not_cached(
    recommend_gateway: TestClient, redis_prefix: str, redis_client: redis.Redis
) -> None:
    assert recommend_gateway.get("/recommend", params={"emotion": "happy", "limit": 0}).status_code == 422
    assert list(redis_client.scan_iter(f"{redis_prefix}*")) == []


def test_in_process_cache_without_redis(make_gateway: GatewayFactory, recommender_url: str) -> None:
    with make_gateway(emotion_url=closed_url(), recommender_url=recommender_url) as client:
        hits0 = metric("gateway_recommend_cache_total", backend="memory", result="hit")
        first = client.get("/recommend", params={"emotion": "angry", "limit": 3})
        second = client.get("/recommend", params={"emotion": "angry", "limit": 3})
        hits = metric("gateway_recommend_cache_total", backend="memory", result="hit") - hits0
        status = client.get("/api/status").json()
    assert [first.headers["x-cache"], second.headers["x-cache"]] == ["miss", "hit"]
    assert hits == 1
    assert status["cache"] == {"backend": "memory", "status": "ok"}


@pytest.mark.parametrize("dead", ["closed", "hanging"])
def test_redis_down_serves_uncached_and_warns_once(
    make_gateway: GatewayFactory,
    recommender_url: str,
    caplog: pytest.LogCaptureFixture,
    dead: str,
) -> None:
    with hanging_url() as hanging:
        url = (closed_url() if dead == "closed" else hanging).replace("http://", "redis://")
        with (
            caplog.at_level(logging.WARNING, logger="moodtunes.gateway.cache"),
            make_gateway(
                emotion_url=closed_url(),
                recommender_url=recommender_url,
                redis={"url": url, "timeout_s": 0.2, "backoff_s": 60},
            ) as client,
        ):
            down0 = metric("gateway_recommend_cache_total", backend="redis", result="unavailable")
            started = time.monotonic()
            answers = [client.get("/recommend", params={"emotion": "happy", "limit": 3}) for _ in range(3)]
            elapsed = time.monotonic() - started
            down = metric("gateway_recommend_cache_total", backend="redis", result="unavailable")
            redis_up = metric("gateway_redis_up")
            status = client.get("/api/status").json()

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.headers["x-cache"] == "miss" and a.json()["tracks"] for a in answers)
    assert down - down0 == 3
    assert redis_up == 0
    assert status["cache"]["backend"] == "redis" and status["cache"]["status"].startswith("down")
    # One failed attempt, then the back-off skips Redis: one warning, no timeout per request.
    warnings = [r for r in caplog.records if r.name == "moodtunes.gateway.redis"]
    assert len(warnings) == 1
    assert elapsed < 5, "a dead Redis must not hold requests up"

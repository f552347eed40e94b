"""The gateway as a real process with REDIS_URL pointing at a port where nothing listens: /recommend
and /analyze still answer, uncached."""

from __future__ import annotations

import httpx
import pytest

from samples.images import astronaut_jpeg
from services.launch import START_TIMEOUT_S, free_port, metrics_url, service
from tests.e2e.conftest import gateway_env

pytestmark = pytest.mark.timeout(3 * START_TIMEOUT_S + 60)


def test_redis_on_a_closed_port_still_answers(emotion_url: str, recommender_url: str) -> None:
    env = gateway_env(emotion_url, recommender_url, "unused:", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    metrics_port = free_port()
    with service("gateway", env=env, timeout=START_TIMEOUT_S, metrics_port=metrics_port) as gateway:
        answers = [
            httpx.get(f"{gateway}/recommend", params={"emotion": "sad", "limit": 3}, timeout=10)
            for _ in range(2)
        ]
        analyzed = httpx.post(
            f"{gateway}/analyze", content=astronaut_jpeg(), timeout=30, headers={"Content-Type": "image/jpeg"}
        )
        status = httpx.get(f"{gateway}/api/status", timeout=10).json()
        metrics = httpx.get(metrics_url(metrics_port)).text
    assert [a.status_code for a in answers] == [200, 200]
    assert all(len(a.json()["tracks"]) == 3 and a.headers["x-cache"] == "miss" for a in answers)
    assert analyzed.status_code == 200 and analyzed.json()["tracks"]
    assert status["cache"]["backend"] == "redis" and status["cache"]["status"].startswith("down")
    assert 'gateway_recommend_cache_total{backend="redis",result="unavailable"} 3.0' in metrics

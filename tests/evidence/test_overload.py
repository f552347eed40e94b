"""Load shedding end to end (real processes): an emotion service that admits two frames at once answers
the rest at once with 503 and Retry-After, every admitted frame is answered, nothing is dropped, and the
gateway passes the 503 and its Retry-After on without naming any internal address, as it does when the
emotion service is down."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from samples.images import astronaut_jpeg
from services.launch import free_port, service
from tests.integration.stack import Stack

JPEG = astronaut_jpeg()


@pytest.fixture(scope="module")
def small_emotion() -> Iterator[str]:
    env = {"EMOTION_ADMISSION_MAX_FRAMES": "2", "EMOTION_ADMISSION_WORKERS": "1"}
    with service("emotion", env=env) as url:
        yield url


@pytest.fixture(scope="module")
def gateway(small_emotion: str, stack: Stack) -> Iterator[str]:
    env = {
        "GATEWAY_EMOTION_URL": small_emotion,
        "GATEWAY_RECOMMENDER_URL": stack.recommender,
        "REDIS_URL": "",
    }
    with service("gateway", env=env) as url:
        yield url


def burst(url: str, n: int = 16) -> list[tuple[int, float, httpx.Response]]:
    def post(_: int) -> tuple[int, float, httpx.Response]:
        start = time.perf_counter()
        resp = httpx.post(f"{url}/predict", files={"image": ("f.jpg", JPEG, "image/jpeg")}, timeout=60)
        return resp.status_code, time.perf_counter() - start, resp

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(post, range(n)))


@pytest.mark.parametrize("where", ["emotion", "gateway"])
def test_frames_beyond_the_admission_are_shed_at_once(small_emotion: str, gateway: str, where: str) -> None:
    answers = burst(small_emotion if where == "emotion" else gateway)
    statuses = sorted({status for status, _, _ in answers})
    assert set(statuses) == {200, 503}, statuses
    answered = [took for status, took, _ in answers if status == 200]
    shed = [resp for status, _, resp in answers if status == 503]
    assert all(len(resp.json()["faces"]) == 1 for status, _, resp in answers if status == 200)
    for resp in shed:
        assert resp.headers["retry-after"] == "1" and "busy" in resp.json()["detail"]
        assert "127.0.0.1" not in resp.text and "http://" not in resp.text
    # Shed ones are not queued behind the admitted ones.
    shed_took = sorted(took for status, took, _ in answers if status == 503)
    assert shed_took[len(shed_took) // 2] < max(answered), (shed_took, answered)


def test_a_backend_that_is_down_is_a_503_without_its_address(stack: Stack) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = {"GATEWAY_EMOTION_URL": dead, "GATEWAY_RECOMMENDER_URL": dead, "REDIS_URL": ""}
    with service("gateway", env=env) as url:
        for resp in (
            httpx.post(f"{url}/predict", files={"image": ("f.jpg", JPEG, "image/jpeg")}, timeout=30),
            httpx.get(f"{url}/recommend", params={"emotion": "sad"}, timeout=30),
        ):
            assert resp.status_code == 503 and resp.headers["retry-after"].isdigit()
            assert "127.0.0.1" not in resp.text and "http://" not in resp.text, resp.text
        status = httpx.get(f"{url}/api/status", timeout=30).text
        assert "127.0.0.1" not in status and "http://" not in status, status

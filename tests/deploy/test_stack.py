"""`docker compose up` as a user runs it, through the published gateway on 127.0.0.1 only: a photo
becomes a face and tracks, the cache is Redis, a dead emotion container gives a quick 503 and comes
back, the training job's model is served after a restart, and `down -v` leaves nothing. The tests run
in file order against one stack (tests/deploy/conftest.py)."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Any

import httpx
import pytest

from samples.images import astronaut_jpeg
from services.common.contracts import EMOTIONS
from services.common.paths import REPO
from services.launch import METRICS_PORTS, metrics_url
from tests.deploy.conftest import Compose, until

# The first test also builds the images (minutes when nothing is cached) and starts the stack.
pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]

PHOTO = astronaut_jpeg()
SHIPPED_MODEL = REPO / "services" / "emotion" / "model"
CARD = "/app/services/emotion/model/emotion.int8.card.json"
SCRAPE = "import urllib.request; print(urllib.request.urlopen('{url}', timeout=10).read().decode())"


def _analyze(stack: Compose, timeout: float = 30) -> httpx.Response:
    photo = {"image": ("astronaut.jpg", PHOTO, "image/jpeg")}
    return httpx.post(f"{stack.url}/analyze", files=photo, timeout=timeout)


def _answer_with_tracks(stack: Compose) -> dict[str, Any] | None:
    resp = _analyze(stack)
    return resp.json() if resp.status_code == 200 and resp.json()["tracks"] else None


def _gateway_metrics(stack: Compose) -> str:
    """From the gateway's metrics port, which compose does not publish: read inside its container."""
    url = metrics_url(METRICS_PORTS["gateway"])
    return stack("exec", "-T", "gateway", "python", "-c", SCRAPE.format(url=url), timeout=60)


def _cache_hits(stack: Compose) -> float:
    metrics = _gateway_metrics(stack)
    found = re.search(r'gateway_recommend_cache_total\{backend="redis",result="hit"\} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0


def test_a_photo_through_the_gateway_gives_a_face_and_tracks(stack: Compose) -> None:
    until(lambda: httpx.get(f"{stack.url}/readyz", timeout=5).status_code == 200, 240, "gateway ready")
    # The recommender may still be loading its catalog when the gateway is up.
    answer = until(lambda: _answer_with_tracks(stack), 120, "/analyze with tracks")
    face = answer["faces"][0]
    assert face["emotion"] in EMOTIONS and face["box"]["w"] > 0
    assert answer["recommender_error"] is None
    assert {"id", "name", "url"} <= set(answer["tracks"][0])


def test_the_second_recommend_is_a_redis_hit(stack: Compose) -> None:
    url = f"{stack.url}/recommend?emotion=sad&limit=5&seed={uuid.uuid4().int % 1000}"
    hits = _cache_hits(stack)
    first, second = httpx.get(url, timeout=30), httpx.get(url, timeout=30)
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert second.json() == first.json()
    assert _cache_hits(stack) == hits + 1
    keys = stack("exec", "-T", "redis", "redis-cli", "dbsize").strip()
    assert int(keys.splitlines()[-1]) >= 1


def test_metrics_are_not_on_the_published_port(stack: Compose) -> None:
    assert httpx.get(f"{stack.url}/metrics", timeout=10).status_code == 404
    assert "http_requests_total" in _gateway_metrics(stack)


def test_a_killed_emotion_container_gives_a_quick_503_and_comes_back(stack: Compose) -> None:
    assert _analyze(stack).status_code == 200
    stack("kill", "emotion")
    start = time.monotonic()
    resp = _analyze(stack, timeout=30)
    elapsed = time.monotonic() - start
    assert resp.status_code == 503 and elapsed < 5, (resp.status_code, f"{elapsed:.1f} s", resp.text)
    assert "emotion" in resp.json()["detail"]

    stack("start", "emotion")
    start = time.monotonic()
    until(lambda: _analyze(stack).status_code == 200, 60, "/analyze after the emotion container restarted")
    print(f"deploy: emotion recovered {time.monotonic() - start:.0f} s after `start`")


def _digests() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(SHIPPED_MODEL.iterdir())}


def test_the_training_job_promotes_a_model_the_emotion_service_serves_after_a_restart(stack: Compose) -> None:
    shipped = _digests()
    before = until(lambda: _analyze(stack).json()["model"], 60, "emotion model name")
    out = stack(
        "run", "--rm", "-T", "training", "--config", "smoke", "--promote", "force", training=True, timeout=900
    )
    assert "promoted into" in out, out[-3000:]
    card = json.loads(stack("run", "--rm", "-T", "--entrypoint", "cat", "training", CARD, training=True))
    assert "--config smoke --promote force" in card["promotion"]["command"]

    stack("restart", "emotion", timeout=120)
    after = until(
        lambda: (r := _analyze(stack)).status_code == 200 and r.json()["model"], 120, "emotion after restart"
    )
    assert after != before
    assert after.startswith(card["name"])
    assert _digests() == shipped, "the repository's shipped model changed"


def test_down_with_volumes_leaves_nothing_of_the_project(stack: Compose) -> None:
    stack("down", "--volumes", "--remove-orphans", "--timeout", "10", training=True, timeout=180)
    assert stack.leftovers() == {"container": [], "network": [], "volume": []}

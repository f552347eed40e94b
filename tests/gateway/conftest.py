"""Gateway tests run the real emotion service and recommender (synthetic catalog) as processes, and real
Redis in a database of their own with a per-run key prefix; the gateway runs in-process so tests can
reach its state."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from samples.images import astronaut_jpeg
from samples.music import recommender_env
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.launch import free_port, service
from tests.fixtures import REDIS_TEST_URL, redis_key_prefix, scrape

# Generous: the services load models, and the machine may be busy with training.
START_TIMEOUT_S = 300.0


@pytest.fixture(scope="session")
def emotion_metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def emotion_url(emotion_metrics_port: int) -> Iterator[str]:
    with service("emotion", timeout=START_TIMEOUT_S, metrics_port=emotion_metrics_port) as url:
        yield url


@pytest.fixture(scope="session")
def recommender_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = recommender_env(tmp_path_factory.mktemp("music"))
    with service("recommender", env=env, timeout=START_TIMEOUT_S) as url:
        yield url


@pytest.fixture(scope="session")
def face_jpeg() -> bytes:
    return astronaut_jpeg()


@pytest.fixture()
def redis_prefix() -> Iterator[str]:
    with redis_key_prefix("gateway") as prefix:
        yield prefix


@pytest.fixture()
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_TEST_URL, decode_responses=True)
    yield client
    client.close()


GatewayFactory = Callable[..., contextlib.AbstractContextManager[TestClient]]


@pytest.fixture()
def make_gateway(tmp_path: Path) -> GatewayFactory:
    """`with make_gateway(emotion_url=..., redis={"url": ...}) as client:` runs the gateway app (lifespan
    included): the backends' URLs, and any settings, a group as a dict of its fields. Without Redis unless
    asked for."""

    @contextlib.contextmanager
    def make(emotion_url: str, recommender_url: str, **overrides: Any) -> Iterator[TestClient]:
        backends = {"emotion": {"url": emotion_url}, "recommender": {"url": recommender_url}}
        # No runtime download from the npm registry per test: tests/gateway/test_ondevice.py installs one.
        offline = {"dir": tmp_path / "runtime", "url": str(tmp_path / "no-runtime.tgz")}
        groups: dict[str, Any] = {"redis": {}, "runtime": offline, **backends}
        for name, value in overrides.items():
            groups[name] = {**groups[name], **value} if name in groups else value
        settings = GatewaySettings.model_validate(groups)
        with TestClient(create_app(settings)) as client:
            yield client

    return make


def metric(name: str, **labels: str) -> float:
    """The value of one sample in this process's metrics (0 when absent), where a gateway under
    TestClient counts."""
    for family in text_string_to_metric_families(scrape()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0

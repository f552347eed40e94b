"""Redis for the tests that share the machine's server: one database, a key prefix per run. (Inputs the
tests build, pictures and music, live in samples/.)"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import redis
from prometheus_client import generate_latest

# The gateway and browser tests share one Redis database; each run keeps to its own key prefix.
REDIS_TEST_URL = "redis://127.0.0.1:6379/13"


def scrape() -> str:
    """What the metrics listener of an app under TestClient would serve: this process's registry, which
    the app counts into (the listener itself runs only in a served process: services/launch.py)."""
    return generate_latest().decode()


@contextlib.contextmanager
def redis_key_prefix(name: str) -> Iterator[str]:
    """A key prefix no other test run uses; only its keys are deleted afterwards."""
    prefix = f"test-{name}-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_TEST_URL)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()

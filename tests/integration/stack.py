"""The three services as real processes on free loopback ports, wired together as `python -m services`
wires them (services/launch.py), with the recommender reading a synthetic catalog (no ../shared needed)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import redis

from samples.music import recommender_env
from services.launch import Stack, stack


def gateway_env(redis_url: str) -> dict[str, str]:
    # A loaded 2-core CI machine can stall the gateway past its default 0.2 s Redis timeout; these tests
    # are about what is cached, so they give Redis more time.
    return {"REDIS_URL": redis_url, "GATEWAY_REDIS_TIMEOUT_S": "2"}


@contextlib.contextmanager
def running_stack(
    music_dir: Path, redis_url: str, gateway_extra: dict[str, str] | None = None
) -> Iterator[Stack]:
    """REDIS_URL="" gives the gateway its in-process cache."""
    env = {
        "recommender": recommender_env(music_dir),
        "gateway": {**gateway_env(redis_url), **(gateway_extra or {})},
    }
    with stack(env) as running:
        yield running


@contextlib.contextmanager
def redis_db(db: int, port: int = 6379) -> Iterator[tuple[str, redis.Redis]]:
    """A dedicated database of the machine's real Redis, flushed before and after (only that one)."""
    url = f"redis://127.0.0.1:{port}/{db}"
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    try:
        yield url, client
    finally:
        client.flushdb()
        client.close()


__all__ = ["Stack", "gateway_env", "recommender_env", "redis_db", "running_stack"]

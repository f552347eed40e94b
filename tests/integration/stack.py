"""The three services as real processes on free loopback ports, wired together as `python -m services`
wires them, with the recommender reading a synthetic catalog (no ../shared needed)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from services.__main__ import SERVICES
from tests.fixtures import write_music_data
from tests.procs import free_port, service


@dataclass(frozen=True)
class Stack:
    emotion: str
    recommender: str
    gateway: str


def recommender_env(music_dir: Path) -> dict[str, str]:
    catalog, labelled = write_music_data(music_dir)
    return {"RECOMMENDER_CATALOG_PATH": str(catalog), "RECOMMENDER_LABELLED_PATH": str(labelled)}


def gateway_env(emotion: str, recommender: str, redis_url: str) -> dict[str, str]:
    # A loaded 2-core CI machine can stall the gateway past its default 0.2 s Redis timeout; these tests
    # are about what is cached, so they give Redis more time.
    return {
        "GATEWAY_EMOTION_URL": emotion,
        "GATEWAY_RECOMMENDER_URL": recommender,
        "REDIS_URL": redis_url,
        "GATEWAY_REDIS_TIMEOUT_S": "2",
    }


@contextlib.contextmanager
def running_stack(
    music_dir: Path, redis_url: str, gateway_extra: dict[str, str] | None = None
) -> Iterator[Stack]:
    """REDIS_URL="" gives the gateway its in-process cache."""
    with contextlib.ExitStack() as stack:
        emotion = stack.enter_context(service(SERVICES["emotion"][0]))
        recommender = stack.enter_context(service(SERVICES["recommender"][0], env=recommender_env(music_dir)))
        env = {**gateway_env(emotion, recommender, redis_url), **(gateway_extra or {})}
        gateway = stack.enter_context(service(SERVICES["gateway"][0], env=env))
        yield Stack(emotion, recommender, gateway)


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


__all__ = ["Stack", "free_port", "gateway_env", "recommender_env", "redis_db", "running_stack"]

"""Cache for GET /recommend answers: Redis when REDIS_URL is set, otherwise in-process.

Redis trouble never reaches the user: the request is served uncached, a warning is logged, and Redis
is left alone for a back-off period so a dead server does not add its timeout to every request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any, Protocol

import redis.asyncio as aioredis
from cachetools import TTLCache
from prometheus_client import Counter, Gauge
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger("moodtunes.gateway.cache")

CACHE_LOOKUPS = Counter(
    "gateway_recommend_cache_total",
    "Lookups in the /recommend cache; result is hit, miss or unavailable (Redis down, served uncached)",
    ["backend", "result"],
)
REDIS_UP = Gauge("gateway_redis_up", "1 when the last Redis operation succeeded, 0 when it failed")


def cache_key(
    prefix: str, emotion: str, limit: int, strategy: str, exclude: list[str], seed: int | None
) -> str:
    """One key per distinct answer: every parameter of /recommend is in it. The exclude list is a set,
    so its order and duplicates do not matter; it is hashed to keep keys short."""
    excluded = ",".join(sorted(set(exclude)))
    digest = hashlib.sha256(excluded.encode()).hexdigest()[:16] if excluded else "-"
    return f"{prefix}recommend:{emotion}:{strategy}:{limit}:{'-' if seed is None else seed}:{digest}"


class RecommendCache(Protocol):
    backend: str

    async def get(self, key: str) -> dict[str, Any] | None: ...
    async def set(self, key: str, value: dict[str, Any]) -> None: ...
    async def status(self) -> str: ...
    async def close(self) -> None: ...


class MemoryCache:
    backend = "memory"

    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self._entries: TTLCache[str, dict[str, Any]] = TTLCache(maxsize=max_entries, ttl=ttl_s)

    async def get(self, key: str) -> dict[str, Any] | None:
        value = self._entries.get(key)
        CACHE_LOOKUPS.labels(self.backend, "miss" if value is None else "hit").inc()
        return value

    async def set(self, key: str, value: dict[str, Any]) -> None:
        self._entries[key] = value

    async def status(self) -> str:
        return "ok"

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    backend = "redis"

    def __init__(self, url: str, ttl_s: int, timeout_s: float, backoff_s: float) -> None:
        self.ttl_s = ttl_s
        self.backoff_s = backoff_s
        self._down_until = 0.0
        # No client-side retries: one short attempt, then the back-off takes over.
        self.redis = aioredis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, op: str, exc: RedisError) -> None:
        self._down_until = time.monotonic() + self.backoff_s
        REDIS_UP.set(0)
        log.warning("redis %s failed, serving uncached for %.0fs: %s", op, self.backoff_s, exc)

    async def get(self, key: str) -> dict[str, Any] | None:
        if not self._available():
            CACHE_LOOKUPS.labels(self.backend, "unavailable").inc()
            return None
        try:
            raw = await self.redis.get(key)
        except RedisError as exc:
            self._failed("get", exc)
            CACHE_LOOKUPS.labels(self.backend, "unavailable").inc()
            return None
        REDIS_UP.set(1)
        CACHE_LOOKUPS.labels(self.backend, "miss" if raw is None else "hit").inc()
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: dict[str, Any]) -> None:
        if not self._available():
            return
        try:
            await self.redis.set(key, json.dumps(value), ex=self.ttl_s)
        except RedisError as exc:
            self._failed("set", exc)

    async def status(self) -> str:
        try:
            await self.redis.ping()
        except RedisError as exc:
            return f"down: {exc}"
        return "ok"

    async def close(self) -> None:
        await self.redis.aclose()


def make_cache(
    redis_url: str | None, ttl_s: int, max_entries: int, timeout_s: float, backoff_s: float
) -> RecommendCache:
    if redis_url:
        return RedisCache(redis_url, ttl_s, timeout_s, backoff_s)
    return MemoryCache(ttl_s, max_entries)

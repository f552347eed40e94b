"""Cache for GET /recommend answers: Redis when REDIS_URL is set, otherwise in-process. An answer is
kept as the bytes the recommender sent, and served as they are.

Redis trouble never reaches the user: the request is served uncached while the shared RedisLink backs
off (services/gateway/redis_link.py).
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from cachetools import TTLCache
from redis.exceptions import RedisError

from services.common.params import RecommendParams
from services.gateway.metrics import CACHE_LOOKUPS
from services.gateway.redis_link import RedisLink
from services.gateway.settings import CacheSettings


def cache_key(prefix: str, params: RecommendParams) -> str:
    """One key per distinct answer: every parameter of /recommend is in it. The exclude list is a set,
    so its order and duplicates do not matter; it is hashed to keep keys short."""
    excluded = ",".join(sorted(set(params.exclude)))
    digest = hashlib.sha256(excluded.encode()).hexdigest()[:16] if excluded else "-"
    seed = "-" if params.seed is None else params.seed
    return f"{prefix}recommend:{params.emotion.value}:{params.strategy.value}:{params.limit}:{seed}:{digest}"


class RecommendCache(Protocol):
    backend: str

    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes) -> None: ...
    async def status(self) -> str: ...
    async def close(self) -> None: ...


class MemoryCache:
    backend = "memory"

    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self._entries: TTLCache[str, bytes] = TTLCache(maxsize=max_entries, ttl=ttl_s)

    async def get(self, key: str) -> bytes | None:
        value = self._entries.get(key)
        CACHE_LOOKUPS.labels(self.backend, "miss" if value is None else "hit").inc()
        return value

    async def set(self, key: str, value: bytes) -> None:
        self._entries[key] = value

    async def status(self) -> str:
        return "ok"

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    backend = "redis"

    def __init__(self, link: RedisLink, ttl_s: int) -> None:
        self.link = link
        self.ttl_s = ttl_s

    async def get(self, key: str) -> bytes | None:
        if not self.link.available():
            CACHE_LOOKUPS.labels(self.backend, "unavailable").inc()
            return None
        try:
            raw = await self.link.redis.get(key)
        except RedisError as exc:
            self.link.failed("cache get", exc)
            CACHE_LOOKUPS.labels(self.backend, "unavailable").inc()
            return None
        self.link.succeeded()
        CACHE_LOOKUPS.labels(self.backend, "miss" if raw is None else "hit").inc()
        return raw if isinstance(raw, bytes) else None  # bytes: the link does not decode

    async def set(self, key: str, value: bytes) -> None:
        if not self.link.available():
            return
        try:
            await self.link.redis.set(key, value, ex=self.ttl_s)
        except RedisError as exc:
            self.link.failed("cache set", exc)

    async def status(self) -> str:
        return await self.link.status()

    async def close(self) -> None:
        """The link belongs to the gateway, which closes it."""


def make_cache(link: RedisLink | None, settings: CacheSettings) -> RecommendCache:
    if link is not None:
        return RedisCache(link, settings.ttl_s)
    return MemoryCache(settings.ttl_s, settings.max_entries)

"""The gateway's one Redis connection, shared by the /recommend cache and the per-viewer state.

Redis trouble never reaches the user. The first failed operation logs one warning and starts a back-off
period during which nothing asks Redis: the cache is skipped and viewer state lives in this process, so a
dead server does not add its timeout to every request. The first operation after the period tries again.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from services.gateway.metrics import REDIS_UP
from services.gateway.settings import RedisSettings

log = logging.getLogger("moodtunes.gateway.redis")


class RedisLink:
    def __init__(self, url: str, settings: RedisSettings) -> None:
        timeout_s = settings.timeout_s
        self.backoff_s = settings.backoff_s
        self._down_until = 0.0
        # No client-side retries: one short attempt, then the back-off takes over. Answers are bytes: the
        # cache passes the recommender's on as they are.
        self.redis = aioredis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )

    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def succeeded(self) -> None:
        REDIS_UP.set(1)

    def failed(self, op: str, exc: RedisError) -> None:
        self._down_until = time.monotonic() + self.backoff_s
        REDIS_UP.set(0)
        log.warning(
            "redis %s failed; for %.0fs /recommend is served uncached and viewer state is this process's: %s",
            op,
            self.backoff_s,
            exc,
        )

    async def status(self) -> str:
        try:
            await self.redis.ping()
        except RedisError as exc:
            return f"down: {exc}"
        return "ok"

    async def close(self) -> None:
        await self.redis.aclose()

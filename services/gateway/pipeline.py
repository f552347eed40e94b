"""What the gateway does with a request: upload limits, cached recommendations, /analyze (predict, steady
the emotion, recommend for it) and /api/mood (the same from probabilities a page computed itself)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum
from typing import Any

import orjson
from prometheus_client import Counter

from services.common.contracts import Emotion, MoodFrame, top_emotion
from services.common.errors import InvalidRequest
from services.common.params import RecommendParams
from services.common.upload import Body
from services.gateway.cache import RecommendCache, cache_key, make_cache
from services.gateway.clients import (
    BackendError,
    BackendRejected,
    BackendUnavailable,
    EmotionClient,
    RecommenderClient,
)
from services.gateway.metrics import ANALYZE_RECOMMEND, MOOD_RECOMMEND
from services.gateway.ondevice import OnDevice
from services.gateway.redis_link import RedisLink
from services.gateway.settings import GatewaySettings
from services.gateway.state import GatewayState, Observed, make_state

log = logging.getLogger("moodtunes.gateway")


class RecommenderBackoff(BackendUnavailable):
    """The recommender failed moments ago, so it was not asked."""


class RecommendMode(StrEnum):
    auto = "auto"  # only when the session's stable emotion (or the parameters) changed
    always = "always"
    never = "never"


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.emotion = EmotionClient(settings.emotion)
        self.recommender = RecommenderClient(settings.recommender)
        self.ondevice = OnDevice(settings.runtime, self.emotion)
        url = settings.redis.url
        self.redis = RedisLink(url, settings.redis) if url else None
        self.cache: RecommendCache = make_cache(self.redis, settings.cache)
        # Sessions' steadiness and the recommender back-off (after the recommender fails, frames skip it
        # for a while: a hanging recommender must not hold every frame up for its timeout). Shared by
        # all replicas through Redis when there is one.
        self.state: GatewayState = make_state(self.redis, settings)

    async def aclose(self) -> None:
        await asyncio.gather(self.emotion.aclose(), self.recommender.aclose(), self.cache.close())
        if self.redis is not None:
            await self.redis.close()

    async def recommend(
        self, params: RecommendParams, request_id: str, respect_backoff: bool = False
    ) -> tuple[bytes, bool]:
        """The recommender's answer (its JSON bytes) and whether it came from the cache. With
        respect_backoff, a recommender that failed moments ago is not asked again (RecommenderBackoff)."""
        key = cache_key(self.settings.redis.prefix, params)
        cached = await self.cache.get(key)
        if cached is not None:
            return cached, True
        if respect_backoff and (down := await self.state.backoff()) is not None:
            raise RecommenderBackoff(down or "recommender unavailable")
        try:
            answer = await self.recommender.recommend(params, request_id)
        except BackendError as exc:
            if not isinstance(exc, BackendRejected):
                await self.state.recommender_failed(exc.message)
            raise
        await self.state.recommender_ok()
        await self.cache.set(key, answer)
        return answer, False

    async def analyze(
        self,
        upload: Body,
        detect: bool | None,
        session_id: str | None,
        params: RecommendParams,
        mode: RecommendMode,
        request_id: str,
    ) -> dict[str, Any]:
        """/analyze's answer (AnalyzeResponse's fields); `params` give the tracks' options, their emotion
        is the session's stable one."""
        predicted = orjson.loads(await self.emotion.predict(upload, detect, request_id))
        faces = predicted.get("faces") or []
        emotion = Emotion(faces[0]["emotion"]) if faces else None
        observed = await self.state.observe(session_id, emotion) if session_id else None
        stable = observed.stable if observed else emotion

        result: dict[str, Any] = {**predicted, "emotion": emotion, "stable_emotion": stable}
        return await self._with_tracks(
            result, observed, session_id, params, mode, ANALYZE_RECOMMEND, request_id
        )

    async def mood(
        self,
        frames: Sequence[MoodFrame],
        session_id: str,
        params: RecommendParams,
        mode: RecommendMode,
        request_id: str,
    ) -> dict[str, Any]:
        """POST /api/mood's answer (MoodResponse's fields): the steady emotion derived from a page's recent
        frames and the session's, with tracks for it as /analyze gives them."""
        window = self.settings.steadiness.window
        if len(frames) > window:
            raise InvalidRequest(
                f"frames: at most {window} (the steadiness window of GET /api/emotions), got {len(frames)}",
            )
        observed = await self.state.mood(session_id, [top_emotion(f.faces[0]) for f in frames])
        result: dict[str, Any] = {"stable_emotion": observed.stable}
        return await self._with_tracks(result, observed, session_id, params, mode, MOOD_RECOMMEND, request_id)

    async def _with_tracks(
        self,
        result: dict[str, Any],
        observed: Observed | None,
        session_id: str | None,
        params: RecommendParams,
        mode: RecommendMode,
        outcomes: Counter,
        request_id: str,
    ) -> dict[str, Any]:
        """`result` with tracks for its stable emotion when they are due: `mode` always, or auto and the
        session was last recommended something else. A recommender that is down leaves the tracks empty
        and says why in `recommender_error`."""
        result |= {"tracks": [], "recommender_error": None, "tracks_updated": False}
        stable = result["stable_emotion"]
        if mode is RecommendMode.never:
            outcomes.labels("off").inc()
            return result
        if stable is None:
            outcomes.labels("no_face").inc()
            return result
        wanted = replace(params, emotion=stable)
        wanted_key = cache_key(self.settings.redis.prefix, wanted)
        if mode is RecommendMode.auto and observed is not None and observed.recommended_for == wanted_key:
            outcomes.labels("unchanged").inc()
            return result
        try:
            answer, _ = await self.recommend(wanted, request_id, respect_backoff=True)
        except BackendError as exc:
            if isinstance(exc, BackendRejected):
                raise  # the request's own fault (e.g. limit out of range): say so, as /recommend does
            # Faces and emotions are still worth showing while the recommender is down.
            outcomes.labels("backoff" if isinstance(exc, RecommenderBackoff) else "failed").inc()
            result["recommender_error"] = exc.message
            return result
        outcomes.labels("fetched").inc()
        if session_id:
            await self.state.recommended(session_id, wanted_key)
        result["tracks"] = orjson.loads(answer).get("tracks", [])
        result["tracks_updated"] = True
        return result

    async def status(self, request_id: str) -> dict[str, Any]:
        emotion, recommender, cache = await asyncio.gather(
            self.emotion.readiness(request_id), self.recommender.readiness(request_id), self.cache.status()
        )
        return {
            "emotion": emotion,
            "recommender": recommender,
            "cache": {"backend": self.cache.backend, "status": cache},
            # Sessions this replica has served lately (with Redis, others may hold more).
            "sessions": self.state.local_sessions(),
        }

"""Request parameters and small dependencies that more than one service's routes take, defined once so
the services validate and document them the same way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request
from starlette.datastructures import State

from services.common.contracts import MAX_SEED, MAX_TRACKS, Emotion, Strategy, parse_track_ids
from services.common.errors import InvalidRequest, NotReady

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=MAX_TRACKS, description="number of tracks")]
Seed = Annotated[int | None, Query(ge=0, le=MAX_SEED, description="same seed, same list; others vary it")]


# Dependencies are coroutines: FastAPI runs a plain function's dependency on the thread pool, a hop that
# costs more than these take.
async def request_id(request: Request) -> str:
    """The id the shared instrumentation gave this request (the client's X-Request-ID or a new one)."""
    rid: str = request.state.request_id
    return rid


async def excluded_tracks(
    exclude: Annotated[str | None, Query(description="comma-separated track ids to leave out")] = None,
) -> frozenset[str]:
    try:
        return parse_track_ids(exclude)
    except ValueError as exc:
        raise InvalidRequest(f"exclude: {exc}") from exc


def ready_state(kind: type[T], unready: str | Callable[[State], str]) -> Callable[[Request], Awaitable[T]]:
    """A dependency for the pipeline the app's start-up put on `app.state.pipeline` (every service's object
    that its routes hand the work to): NotReady(`unready`, or what it says from `app.state`) while it is
    None (before start-up, or after shutdown)."""

    async def dependency(request: Request) -> T:
        value = request.app.state.pipeline
        if value is None:
            raise NotReady(unready if isinstance(unready, str) else unready(request.app.state))
        assert isinstance(value, kind)
        return value

    return dependency


RequestId = Annotated[str, Depends(request_id)]

Exclude = Annotated[frozenset[str], Depends(excluded_tracks)]


@dataclass(frozen=True)
class RecommendParams:
    """What a list of tracks is asked for with: /recommend's query, the gateway's cache key and what a
    session was last recommended for."""

    emotion: Emotion
    limit: int = 10
    strategy: Strategy = Strategy.match
    exclude: tuple[str, ...] = ()
    seed: int | None = None

    def query(self) -> dict[str, str | int]:
        q: dict[str, str | int] = {
            "emotion": self.emotion.value,
            "limit": self.limit,
            "strategy": self.strategy.value,
        }
        if self.exclude:
            q["exclude"] = ",".join(self.exclude)
        if self.seed is not None:
            q["seed"] = self.seed
        return q


async def track_options(
    exclude: Exclude, limit: Limit = 10, strategy: Strategy = Strategy.match, seed: Seed = None
) -> RecommendParams:
    """The /recommend parameters but the emotion, which /analyze reads from the frame: it holds a
    placeholder for the caller to replace."""
    # The exclude list is a set: a canonical order makes equal requests share one cache entry.
    return RecommendParams(Emotion.neutral, limit, strategy, tuple(sorted(exclude)), seed)


TrackOptions = Annotated[RecommendParams, Depends(track_options)]


async def recommend_params(emotion: Emotion, options: TrackOptions) -> RecommendParams:
    return replace(options, emotion=emotion)


RecommendQuery = Annotated[RecommendParams, Depends(recommend_params)]

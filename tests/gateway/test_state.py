"""Per-viewer state in Redis (real Redis, a key prefix of this run's own) answers as the in-process rule
does, is shared by every gateway that uses the same Redis, expires, and falls back to the process when
Redis fails."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis

from samples.servers import redis_server
from services.common.contracts import EMOTIONS, Emotion
from services.common.errors import Busy
from services.gateway.redis_link import RedisLink
from services.gateway.settings import GatewaySettings, RedisSettings
from services.gateway.state import MemoryState, RateLimit, RateLimited, RedisState, make_state
from services.gateway.steadiness import Steadiness
from tests.fixtures import REDIS_TEST_URL
from tests.gateway.faults import closed_url

pytestmark = pytest.mark.anyio

H, S, N = Emotion.happy, Emotion.sad, Emotion.neutral
WINDOW, VOTES = 5, 3
RATE = RateLimit(1000, 60)


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


def memory(backoff_s: float = 3.0, rate: RateLimit = RATE) -> MemoryState:
    return MemoryState(Steadiness(WINDOW, VOTES, 100, 60), backoff_s, rate)


StateFactory = Callable[..., Awaitable[RedisState]]


@pytest.fixture()
async def replica(redis_prefix: str) -> AsyncIterator[StateFactory]:
    """`await replica()` is one gateway's state on the test Redis; every call is another replica."""
    links: list[RedisLink] = []

    async def make(
        url: str = REDIS_TEST_URL,
        session_ttl_s: int = 60,
        backoff_s: float = 3.0,
        new_sessions_max: int = 1000,
        rate: RateLimit = RATE,
    ) -> RedisState:
        link = RedisLink(url, RedisSettings(timeout_s=2.0, backoff_s=60))
        links.append(link)
        settings = GatewaySettings.model_validate(
            {
                "redis": {"prefix": redis_prefix, "new_sessions_max": new_sessions_max},
                "sessions": {"max": 100, "ttl_s": session_ttl_s},
                "steadiness": {"window": WINDOW, "votes": VOTES},
                "recommender": {"backoff_s": backoff_s},
                "mood": {"rate_requests": rate.requests, "rate_period_s": rate.period_s},
            }
        )
        state = make_state(link, settings)
        assert isinstance(state, RedisState)
        return state

    yield make
    for link in links:
        await link.close()


async def test_redis_rule_matches_the_in_process_rule(replica: StateFactory) -> None:
    rng = random.Random(15)
    shared, local = await replica(), memory()
    emotions: list[Emotion | None] = [Emotion(e) for e in EMOTIONS[:3]] + [None]
    for session in ("a", "b", "c"):
        for _ in range(60):
            emotion = rng.choice(emotions)
            got, want = await shared.observe(session, emotion), await local.observe(session, emotion)
            assert got == want


async def test_two_replicas_share_a_session(replica: StateFactory) -> None:
    one, two = await replica(), await replica()
    frames = [H, S, H, S, S, N, S, H, H, H]
    steady = [(await (one if i % 2 == 0 else two).observe("v", e)).stable for i, e in enumerate(frames)]
    local = memory()
    assert steady == [(await local.observe("v", e)).stable for e in frames]
    await one.recommended("v", "key-1")
    assert (await two.observe("v", None)).recommended_for == "key-1"


async def test_concurrent_frames_of_one_session_are_not_lost(replica: StateFactory) -> None:
    # Three sad frames sent at once from three replicas: each update sees the one before it.
    replicas = [await replica() for _ in range(3)]
    await replicas[0].observe("v", H)
    await asyncio.gather(*(r.observe("v", S) for r in replicas))
    assert (await replicas[0].observe("v", None)).stable == S


async def test_session_keys_expire(
    replica: StateFactory, redis_client: redis.Redis, redis_prefix: str
) -> None:
    state = await replica(session_ttl_s=30)
    await state.observe("v", H)
    await state.recommended("v", "k")
    ttl = redis_client.ttl(f"{redis_prefix}session:v")
    assert 0 < ttl <= 30
    # No face on an unknown session writes nothing.
    await state.observe("nobody", None)
    assert redis_client.exists(f"{redis_prefix}session:nobody") == 0


def session_keys(redis_client: redis.Redis, redis_prefix: str) -> set[str]:
    return set(redis_client.scan_iter(f"{redis_prefix}session:*"))


async def test_a_flood_of_new_sessions_is_refused_past_the_cap_and_live_ones_carry_on(
    replica: StateFactory, redis_client: redis.Redis, redis_prefix: str
) -> None:
    one, two = await replica(new_sessions_max=3), await replica(new_sessions_max=3)
    for i, viewer in enumerate(("a", "b", "c")):  # the cap is shared by the replicas
        await (one if i % 2 else two).observe(viewer, H)
    refused = []
    for n in range(50):
        with pytest.raises(Busy) as caught:
            await (one if n % 2 else two).observe(f"flood-{n}", S)
        refused.append(caught.value)
    assert {e.message for e in refused} == {"busy: too many new sessions, retry later"}
    assert all(0 < (e.retry_after_s or 0) <= 60 for e in refused)
    # Nothing of the flood is stored; the viewers' sessions are all there and go on as before.
    assert session_keys(redis_client, redis_prefix) == {f"{redis_prefix}session:{v}" for v in "abc"}
    assert [(await one.observe("a", S)).stable for _ in range(3)] == [H, H, S]
    await two.recommended("b", "key-b")
    assert (await one.observe("b", None)).recommended_for == "key-b"
    # A frame without a face creates no state, so it needs no admission; nor does a recommendation.
    assert (await one.observe("flood-0", None)).stable is None
    await one.recommended("flood-1", "key")
    assert len(session_keys(redis_client, redis_prefix)) == 3


async def test_new_sessions_are_admitted_again_once_the_oldest_leave_the_window(
    replica: StateFactory, redis_client: redis.Redis, redis_prefix: str
) -> None:
    state = await replica(session_ttl_s=1, new_sessions_max=2)
    await state.observe("a", H)
    await state.observe("b", H)
    with pytest.raises(Busy) as caught:
        await state.observe("c", H)
    assert caught.value.retry_after_s == 1
    await asyncio.sleep(1.2)
    assert (await state.observe("c", S)).stable == S
    # The register of creation times expires with the window too.
    assert 0 < redis_client.pttl(f"{redis_prefix}sessions:created") <= 1000


async def test_recommender_backoff_is_shared_and_expires(replica: StateFactory) -> None:
    one, two = await replica(backoff_s=0.3), await replica(backoff_s=0.3)
    assert await two.backoff() is None
    await one.recommender_failed("recommender unavailable: no answer")
    assert await two.backoff() == "recommender unavailable: no answer"
    await asyncio.sleep(0.5)
    assert await two.backoff() is None
    await one.recommender_failed("again")
    await two.recommender_ok()
    assert await one.backoff() is None


async def test_redis_down_falls_back_to_the_process_with_one_warning(
    replica: StateFactory, caplog: pytest.LogCaptureFixture
) -> None:
    dead = await replica(url=closed_url().replace("http://", "redis://"))
    with caplog.at_level(logging.WARNING, logger="moodtunes.gateway.redis"):
        steady = [(await dead.observe("v", e)).stable for e in [H, S, S, S]]
        await dead.recommender_failed("down")
        backoff = await dead.backoff()
    assert steady == [H, H, H, S]
    assert backoff == "down"
    assert len([r for r in caplog.records if "redis" in r.getMessage()]) == 1


async def test_a_session_carries_on_in_process_when_redis_goes(replica: StateFactory) -> None:
    with redis_server() as (url, proc):
        state = await replica(url=url)
        for e in [H, S, S]:
            await state.observe("v", e)
        await state.recommended("v", "k")
        proc.kill()
        proc.wait(10)
        # The same replica goes on from what Redis last said (window H S S, stable H): one more sad frame.
        observed = await state.observe("v", S)
    assert observed.stable == S and observed.recommended_for == "k"
    assert not state.link.available()


# ---------- POST /api/mood: a page's own window ----------


async def test_redis_derives_a_pages_window_as_the_in_process_rule_does(replica: StateFactory) -> None:
    rng = random.Random(23)
    shared, local = await replica(), memory()
    for session in ("a", "b", "c"):
        for _ in range(40):
            window = [Emotion(rng.choice(EMOTIONS[:3])) for _ in range(rng.randint(1, WINDOW))]
            got, want = await shared.mood(session, window), await local.mood(session, window)
            assert got == want


async def test_a_session_moves_between_frames_and_windows(replica: StateFactory) -> None:
    """A page that changes mode mid-session (server frames, then its own windows) keeps its steady
    emotion, on any replica."""
    one, two = await replica(), await replica()
    for e in [H, H, S]:
        await one.observe("v", e)
    assert (await two.mood("v", [H, S, S])).stable == H  # 2 sad of 3: not enough votes
    assert (await one.mood("v", [H, S, S, S])).stable == S
    assert (await two.observe("v", H)).stable == S  # the window S S S H after it


async def test_a_sessions_mood_rate_is_shared_by_the_replicas_and_renews(replica: StateFactory) -> None:
    rate = RateLimit(4, 0.5)
    one, two = await replica(rate=rate), await replica(rate=rate)
    for i in range(4):
        await (one if i % 2 else two).mood("v", [H])
    with pytest.raises(RateLimited) as caught:
        await one.mood("v", [S, S, S])
    assert caught.value.retry_after_s == 1
    assert "at most 4 per 0.5 s" in caught.value.message
    await two.mood("other", [S])  # another session has its own
    assert (await one.observe("v", None)).stable == H  # the refused window changed nothing
    await asyncio.sleep(0.6)
    assert (await two.mood("v", [S, S, S])).stable == S


async def test_the_in_process_mood_rate() -> None:
    state = memory(rate=RateLimit(2, 0.3))
    await state.mood("v", [H])
    await state.mood("v", [H])
    with pytest.raises(RateLimited):
        await state.mood("v", [S])
    await asyncio.sleep(0.35)
    assert (await state.mood("v", [S, S, S])).stable == S


async def test_a_flood_of_new_mood_sessions_is_refused_past_the_cap(
    replica: StateFactory, redis_client: redis.Redis, redis_prefix: str
) -> None:
    state = await replica(new_sessions_max=2)
    await state.mood("a", [H])
    await state.observe("b", S)
    with pytest.raises(Busy):
        await state.mood("flood", [S])
    assert session_keys(redis_client, redis_prefix) == {f"{redis_prefix}session:{v}" for v in "ab"}
    assert (await state.mood("a", [S, S, S])).stable == S


async def test_mood_carries_on_in_process_when_redis_is_down(replica: StateFactory) -> None:
    dead = await replica(url=closed_url().replace("http://", "redis://"))
    assert (await dead.mood("v", [H])).stable == H
    assert (await dead.mood("v", [H, S, S])).stable == H
    assert (await dead.mood("v", [S, S, S])).stable == S

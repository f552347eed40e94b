"""What the gateway remembers between requests: each session's steadiness (recent emotions, the stable
one, what was last recommended to it) and the recommender back-off.

Without REDIS_URL it lives in this process, as one replica needs. With it, every replica reads and
writes the same state in Redis, so a viewer whose frames are spread over replicas by a load balancer gets
the same stable emotion as with one gateway: one Lua script per frame applies the steadiness rule
atomically (two replicas handling one session's frames at once cannot interleave their updates), and
every key expires, sessions after `session_ttl_s` without frames, the back-off after its period.
Expiry alone does not bound what a flood of new session ids costs Redis within that time, so a session's
state is created only once the session is admitted: at most `new_sessions_max` sessions created within
the last `session_ttl_s`, all replicas together (a sorted set of their creation times). A new session
beyond it is refused as Busy, to retry when the oldest of them leaves that window; sessions already
there carry on, so a flood cannot push live viewers out. Sessions older than that window are the ones
still sending frames.

POST /api/mood (a page that reads faces itself) replaces a session's recent emotions with the page's own
window and applies the same rule to it (Steadiness.derive; in Redis one script call per request), and
limits each session to `mood_rate.requests` such requests per `mood_rate.period_s`, all replicas together
(429 with Retry-After beyond it).

While Redis fails (RedisLink's back-off), the state lives in this process: the viewer keeps getting
answers and tracks, and each replica remembers the sessions it has served. Every Redis answer is mirrored
into that per-process state, so a session that loses Redis carries on from where it was on this replica.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from redis.exceptions import RedisError

from services.common.contracts import Emotion
from services.common.errors import Busy, RequestError
from services.common.limits import SHED
from services.gateway.metrics import MOOD_RATE_LIMITED
from services.gateway.redis_link import RedisLink
from services.gateway.settings import GatewaySettings
from services.gateway.steadiness import Steadiness

T = TypeVar("T")

# KEYS[1]: the session's hash. ARGV: this frame's emotion ('' when no face), window, votes, TTL in ms,
# '1' when the session was just admitted. The same rule as Steadiness.observe. Returns the stable
# emotion, what was last recommended and the recent emotions (comma-separated), '' for none, and 'new'
# when the frame would create a session that has not been admitted (nothing is written then).
OBSERVE_LUA = """
local key = KEYS[1]
local emotion = ARGV[1]
local got = redis.call('HMGET', key, 'stable', 'recent', 'recommended')
local stable, stored, recommended = got[1], got[2] or '', got[3]
if emotion ~= '' and not stable and not recommended and ARGV[5] ~= '1' then
  return {'', '', '', 'new'}
end
if emotion ~= '' then
  local window, votes = tonumber(ARGV[2]), tonumber(ARGV[3])
  local recent = {}
  for e in string.gmatch(stored, '[^,]+') do recent[#recent + 1] = e end
  recent[#recent + 1] = emotion
  while #recent > window do table.remove(recent, 1) end
  local count = 0
  for _, e in ipairs(recent) do
    if e == emotion then count = count + 1 end
  end
  if not stable or count >= votes then stable = emotion end
  stored = table.concat(recent, ',')
  redis.call('HSET', key, 'recent', stored, 'stable', stable)
  redis.call('PEXPIRE', key, ARGV[4])
elseif stable or recommended then
  redis.call('PEXPIRE', key, ARGV[4])
end
return {stable or '', recommended or '', stored, ''}
"""

# KEYS[1]: the session's hash. ARGV: the page's window of emotions (comma-separated, oldest first, at
# least one), window, votes, TTL in ms, '1' when the session was just admitted, the most requests per
# rate period, the period in ms. Steadiness.derive's rule, and the session's request rate (a fixed
# period from its first request, on Redis's clock). Returns the stable emotion, what was last
# recommended, the recent emotions, and '' or 'new' (as OBSERVE_LUA) or 'limited' and the milliseconds
# until the period ends (nothing is written then).
MOOD_LUA = """
local key = KEYS[1]
local got = redis.call('HMGET', key, 'stable', 'recommended', 'rate_start', 'rate_count')
local stable, recommended = got[1], got[2]
if not stable and not recommended and ARGV[5] ~= '1' then
  return {'', '', '', 'new', ''}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local most, period = tonumber(ARGV[6]), tonumber(ARGV[7])
local start, count = tonumber(got[3] or ''), tonumber(got[4] or '0')
if not start or now - start >= period then
  start, count = now, 0
end
if count >= most then
  return {stable or '', recommended or '', '', 'limited', tostring(math.max(1, start + period - now))}
end
local window, votes = tonumber(ARGV[2]), tonumber(ARGV[3])
local recent = {}
for emotion in string.gmatch(ARGV[1], '[^,]+') do
  recent[#recent + 1] = emotion
  while #recent > window do table.remove(recent, 1) end
  local n = 0
  for _, e in ipairs(recent) do
    if e == emotion then n = n + 1 end
  end
  if not stable or n >= votes then stable = emotion end
end
local stored = table.concat(recent, ',')
redis.call('HSET', key, 'recent', stored, 'stable', stable, 'rate_start', start, 'rate_count', count + 1)
redis.call('PEXPIRE', key, ARGV[4])
return {stable, recommended or '', stored, '', ''}
"""

# KEYS[1]: the session's hash; ARGV: the recommendation's key, TTL in ms. Only a session that exists
# (was admitted) is written.
RECOMMENDED_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'recommended', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
"""

# KEYS[1]: the sorted set of sessions by creation time (ms, Redis's clock). ARGV: the session id, the
# window (the session TTL) in ms, the most sessions created within it. Returns 0 when the session is
# admitted (or already was), else the milliseconds until the oldest one leaves the window.
ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""


@dataclass(frozen=True)
class Observed:
    stable: Emotion | None
    recommended_for: str | None


@dataclass(frozen=True)
class RateLimit:
    requests: int
    period_s: float


class RateLimited(RequestError):
    """The session has used up its requests for now (retry_after_s says when it may go on)."""


def rate_limited(limit: RateLimit, retry_s: float) -> RateLimited:
    MOOD_RATE_LIMITED.inc()
    return RateLimited(
        f"too many mood updates for this session: at most {limit.requests} per {limit.period_s:g} s",
        retry_after_s=max(1, math.ceil(retry_s)),
    )


class GatewayState(Protocol):
    backend: str

    async def observe(self, session_id: str, emotion: Emotion | None) -> Observed:
        """Records one frame's emotion (None: no face) and returns the session's stable emotion."""

    async def mood(self, session_id: str, emotions: Sequence[Emotion]) -> Observed:
        """A page's own window of emotions (POST /api/mood) replaces the session's recent ones; returns the
        stable emotion derived from it. Raises 429 past the session's rate."""

    async def recommended(self, session_id: str, key: str) -> None:
        """The session was just sent the tracks fetched with this cache key."""

    async def backoff(self) -> str | None:
        """Why the recommender is not to be asked now, or None."""

    async def recommender_failed(self, detail: str) -> None: ...
    async def recommender_ok(self) -> None: ...
    def local_sessions(self) -> int: ...


class MemoryState:
    backend = "memory"

    def __init__(self, steadiness: Steadiness, recommender_backoff_s: float, mood_rate: RateLimit) -> None:
        self.steadiness = steadiness
        self.recommender_backoff_s = recommender_backoff_s
        self.mood_rate = mood_rate
        self._down_until = 0.0
        self._down_detail = ""

    async def observe(self, session_id: str, emotion: Emotion | None) -> Observed:
        state = self.steadiness.session(session_id)
        stable = self.steadiness.observe(state, emotion)
        return Observed(stable, state.recommended_for)

    async def mood(self, session_id: str, emotions: Sequence[Emotion]) -> Observed:
        state = self.steadiness.session(session_id)
        now, limit = time.monotonic(), self.mood_rate
        if now - state.rate_start >= limit.period_s:
            state.rate_start, state.rate_count = now, 0
        if state.rate_count >= limit.requests:
            raise rate_limited(limit, state.rate_start + limit.period_s - now)
        state.rate_count += 1
        return Observed(self.steadiness.derive(state, emotions), state.recommended_for)

    async def recommended(self, session_id: str, key: str) -> None:
        self.steadiness.session(session_id).recommended_for = key

    def mirror(self, session_id: str, stable: str, recommended: str, recent: str) -> None:
        state = self.steadiness.session(session_id)
        state.recent = deque((Emotion(e) for e in recent.split(",") if e), maxlen=self.steadiness.window)
        state.stable = Emotion(stable) if stable else None
        state.recommended_for = recommended or None

    async def backoff(self) -> str | None:
        return self._down_detail if time.monotonic() < self._down_until else None

    async def recommender_failed(self, detail: str) -> None:
        self._down_until = time.monotonic() + self.recommender_backoff_s
        self._down_detail = detail

    async def recommender_ok(self) -> None:
        self._down_until = 0.0

    def local_sessions(self) -> int:
        return len(self.steadiness)


class RedisState:
    backend = "redis"

    def __init__(
        self,
        link: RedisLink,
        prefix: str,
        session_ttl_s: int,
        recommender_backoff_s: float,
        local: MemoryState,
        new_sessions_max: int,
    ) -> None:
        self.link = link
        self.prefix = prefix
        self.ttl_ms = session_ttl_s * 1000
        self.backoff_ms = max(1, round(recommender_backoff_s * 1000))
        self.local = local
        self.new_sessions_max = new_sessions_max
        self._observe = link.redis.register_script(OBSERVE_LUA)
        self._recommended = link.redis.register_script(RECOMMENDED_LUA)
        self._admit = link.redis.register_script(ADMIT_LUA)
        self._mood = link.redis.register_script(MOOD_LUA)
        self._backoff_key = f"{prefix}recommender:backoff"
        self._created_key = f"{prefix}sessions:created"

    def _session_key(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    async def _shared(
        self, op: str, remote: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]
    ) -> T:
        if self.link.available():
            try:
                result = await remote()
            except RedisError as exc:
                self.link.failed(op, exc)
            else:
                self.link.succeeded()
                return result
        return await local()

    async def observe(self, session_id: str, emotion: Emotion | None) -> Observed:
        steadiness = self.local.steadiness

        async def remote() -> Observed:
            keys = [self._session_key(session_id)]
            args = [emotion.value if emotion else "", steadiness.window, steadiness.votes, self.ttl_ms, ""]
            stable, recommended, recent, new = _text(await self._observe(keys=keys, args=args))
            if new:
                await self._admit_session(session_id)
                args[-1] = "1"
                stable, recommended, recent, _ = _text(await self._observe(keys=keys, args=args))
            self.local.mirror(session_id, stable, recommended, recent)
            return Observed(Emotion(stable) if stable else None, recommended or None)

        return await self._shared("session observe", remote, lambda: self.local.observe(session_id, emotion))

    async def mood(self, session_id: str, emotions: Sequence[Emotion]) -> Observed:
        steadiness, limit = self.local.steadiness, self.local.mood_rate

        async def remote() -> Observed:
            keys = [self._session_key(session_id)]
            period_ms = max(1, round(limit.period_s * 1000))
            window = ",".join(e.value for e in emotions)
            args: list[str | int] = [
                window,
                steadiness.window,
                steadiness.votes,
                self.ttl_ms,
                "",
                limit.requests,
                period_ms,
            ]
            stable, recommended, recent, outcome, wait_ms = _text(await self._mood(keys=keys, args=args))
            if outcome == "new":
                await self._admit_session(session_id)
                args[4] = "1"
                stable, recommended, recent, outcome, wait_ms = _text(await self._mood(keys=keys, args=args))
            if outcome == "limited":
                raise rate_limited(limit, int(wait_ms) / 1000)
            self.local.mirror(session_id, stable, recommended, recent)
            return Observed(Emotion(stable), recommended or None)

        return await self._shared("session mood", remote, lambda: self.local.mood(session_id, emotions))

    async def _admit_session(self, session_id: str) -> None:
        """Raises Busy, with when to retry, when new_sessions_max sessions were created within the TTL."""
        wait_ms = await self._admit(
            keys=[self._created_key], args=[session_id, self.ttl_ms, self.new_sessions_max]
        )
        if wait_ms:
            SHED.labels("sessions").inc()
            raise Busy("busy: too many new sessions, retry later", retry_after_s=math.ceil(wait_ms / 1000))

    async def recommended(self, session_id: str, key: str) -> None:
        await self.local.recommended(session_id, key)

        async def remote() -> None:
            await self._recommended(keys=[self._session_key(session_id)], args=[key, self.ttl_ms])

        await self._shared("session update", remote, _nothing)

    async def backoff(self) -> str | None:
        async def remote() -> str | None:
            value = await self.link.redis.get(self._backoff_key)
            return value.decode() if isinstance(value, bytes) else value

        return await self._shared("backoff read", remote, self.local.backoff)

    async def recommender_failed(self, detail: str) -> None:
        await self.local.recommender_failed(detail)
        await self._shared(
            "backoff write",
            lambda: self.link.redis.set(self._backoff_key, detail, px=self.backoff_ms),
            _nothing,
        )

    async def recommender_ok(self) -> None:
        await self.local.recommender_ok()
        await self._shared("backoff clear", lambda: self.link.redis.delete(self._backoff_key), _nothing)

    def local_sessions(self) -> int:
        return self.local.local_sessions()


async def _nothing() -> None:
    return None


def _text(values: list[bytes]) -> list[str]:
    return [v.decode() for v in values]


def make_state(link: RedisLink | None, settings: GatewaySettings) -> GatewayState:
    """The sessions' steadiness, the /api/mood rate and the recommender back-off: in Redis through `link`,
    else in this process."""
    sessions, backoff_s = settings.sessions, settings.recommender.backoff_s
    steadiness = Steadiness(
        settings.steadiness.window, settings.steadiness.votes, sessions.max, sessions.ttl_s
    )
    rate = RateLimit(settings.mood.rate_requests, settings.mood.rate_period_s)
    local = MemoryState(steadiness, backoff_s, rate)
    if link is None:
        return local
    redis = settings.redis
    return RedisState(link, redis.prefix, sessions.ttl_s, backoff_s, local, redis.new_sessions_max)

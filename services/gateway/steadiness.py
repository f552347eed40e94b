"""Keeps the recommended emotion steady while the per-frame emotion flickers.

Each client session keeps the emotions of its last `window` frames that showed a face. The stable
emotion starts as the first one seen, and switches to another only when that one holds at least
`votes` of the window; boxes and labels still follow every frame. Sessions live in bounded TTL maps,
so abandoned tabs cost nothing, and in two segments, so that a flood of new session ids cannot push
live viewers out: a session seen once waits in a small segment of newcomers (where a flood only evicts
other newcomers); at its second frame it moves to the segment of returning sessions, which only
returning sessions and time evict. This is the in-process form of the rule; with Redis the same rule runs as
a Lua script (services/gateway/state.py), and tests hold the two to the same answers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from cachetools import TTLCache

from services.common.contracts import Emotion

# One session in this many places is for sessions seen only once so far.
NEWCOMER_SHARE = 10


@dataclass
class SessionState:
    window: int
    recent: deque[Emotion] = field(init=False)
    stable: Emotion | None = None
    # What was last recommended to this session: the cache key of the request it was fetched with.
    recommended_for: str | None = None
    # POST /api/mood's per-session rate: when the current period started (time.monotonic()) and the
    # requests admitted in it.
    rate_start: float = float("-inf")
    rate_count: int = 0

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.window)


class Steadiness:
    def __init__(self, window: int, votes: int, max_sessions: int, ttl_s: float) -> None:
        if not 1 <= votes <= window:
            raise ValueError("need 1 <= votes <= window")
        self.window = window
        self.votes = votes
        newcomers = min(max(2, max_sessions // NEWCOMER_SHARE), max(1, max_sessions - 1))
        self._new: TTLCache[str, SessionState] = TTLCache(maxsize=newcomers, ttl=ttl_s)
        self._returning: TTLCache[str, SessionState] = TTLCache(
            maxsize=max(1, max_sessions - newcomers), ttl=ttl_s
        )

    def session(self, session_id: str) -> SessionState:
        state = self._returning.get(session_id)
        if state is None:
            state = self._new.pop(session_id, None)
            if state is None:
                state = SessionState(self.window)
                self._new[session_id] = state
                return state
        # (Re-)inserting refreshes the TTL: a session expires after ttl_s without frames.
        self._returning[session_id] = state
        return state

    def observe(self, state: SessionState, emotion: Emotion | None) -> Emotion | None:
        """Records one frame's emotion (None: no face, which changes nothing) and returns the stable one."""
        if emotion is None:
            return state.stable
        state.recent.append(emotion)
        if state.stable is None or state.recent.count(emotion) >= self.votes:
            state.stable = emotion
        return state.stable

    def derive(self, state: SessionState, emotions: Sequence[Emotion]) -> Emotion | None:
        """The stable emotion once a page's own recent frames (oldest first, each with a face) replace the
        session's: the rule replayed over them from the session's stable emotion. The page runs the rule
        on every frame (frontend/steadiness.js) and sends its window when its steady emotion changes; that
        change happened at the newest frame, whose emotion then holds `votes` of the window, so the replay
        ends on it too. What the page claims is never taken on trust: only what its frames show counts."""
        state.recent.clear()
        for emotion in emotions:
            self.observe(state, emotion)
        return state.stable

    def __len__(self) -> int:
        return len(self._new) + len(self._returning)

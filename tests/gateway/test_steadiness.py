"""The steady emotion: flicker does not move it, a held emotion does; sessions are separate and bounded."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence

import pytest

from services.common.contracts import Emotion
from services.gateway.steadiness import Steadiness
from tests.vectors import steadiness as vectors

H, S, N = Emotion.happy, Emotion.sad, Emotion.neutral


def run(steady: Steadiness, frames: Sequence[Emotion | None], session: str = "s") -> list[Emotion | None]:
    state = steady.session(session)
    return [steady.observe(state, e) for e in frames]


def test_first_emotion_is_stable_at_once() -> None:
    assert run(Steadiness(5, 3, 10, 60), [S]) == [S]


def test_no_face_before_any_face_is_no_emotion() -> None:
    assert run(Steadiness(5, 3, 10, 60), [None, None]) == [None, None]


def test_single_frame_flicker_does_not_change_it() -> None:
    assert run(Steadiness(5, 3, 10, 60), [H, H, S, H, N, H, S]) == [H] * 7


def test_new_emotion_wins_after_enough_votes() -> None:
    # Window 5, 3 votes: the third sad frame in the window switches it, then happy needs 3 again.
    got = run(Steadiness(5, 3, 10, 60), [H, H, S, S, S, H, H, H])
    assert got == [H, H, H, H, S, S, S, H]


def test_votes_count_inside_the_window_only() -> None:
    # Sad frames 5 apart never share a 3-frame window.
    frames = [H, S, H, H, S, H, H, S, H]
    assert run(Steadiness(3, 2, 10, 60), frames) == [H] * len(frames)


def test_frames_without_a_face_keep_the_stable_emotion() -> None:
    assert run(Steadiness(5, 3, 10, 60), [H, None, None, None, S]) == [H, H, H, H, H]


def test_window_of_one_follows_every_frame() -> None:
    assert run(Steadiness(1, 1, 10, 60), [H, S, N]) == [H, S, N]


def test_sessions_are_independent() -> None:
    steady = Steadiness(5, 3, 10, 60)
    a, b = steady.session("a"), steady.session("b")
    steady.observe(a, H)
    steady.observe(b, S)
    assert (a.stable, b.stable) == (H, S)
    assert steady.session("a") is a


def test_session_map_is_bounded() -> None:
    steady = Steadiness(5, 3, max_sessions=3, ttl_s=60)
    for i in range(10):
        steady.observe(steady.session(f"s{i}"), H)
    assert len(steady) <= 3
    assert steady.session("s0").stable is None  # evicted: starts afresh


def test_idle_sessions_expire() -> None:
    steady = Steadiness(5, 3, max_sessions=10, ttl_s=0.05)
    steady.observe(steady.session("a"), H)
    time.sleep(0.1)
    assert steady.session("a").stable is None


def test_votes_cannot_exceed_window() -> None:
    with pytest.raises(ValueError):
        Steadiness(3, 4, 10, 60)


def test_a_flood_of_new_session_ids_does_not_evict_live_viewers() -> None:
    steady = Steadiness(5, 3, max_sessions=100, ttl_s=600)
    viewers = [f"viewer-{i}" for i in range(8)]
    for _ in range(2):  # two frames each: they are returning sessions now
        for v in viewers:
            steady.observe(steady.session(v), Emotion.sad)
    for i in range(12_000):  # each flood id is seen once
        steady.observe(steady.session(f"flood-{i}"), Emotion.happy)
    assert len(steady) <= 100
    for v in viewers:  # every viewer keeps its history: one happy frame does not flip sad
        assert steady.observe(steady.session(v), Emotion.happy) == Emotion.sad


def test_newcomers_still_get_state_during_a_flood() -> None:
    steady = Steadiness(5, 3, max_sessions=100, ttl_s=600)
    steady.observe(steady.session("new-viewer"), Emotion.sad)
    steady.observe(steady.session("new-viewer"), Emotion.sad)  # promoted at its second frame
    for i in range(12_000):
        steady.session(f"flood-{i}")
    assert steady.observe(steady.session("new-viewer"), Emotion.happy) == Emotion.sad


def test_the_shared_vectors_are_what_the_python_rule_computes() -> None:
    """frontend/steadiness.js is held to these same vectors (tests/e2e/test_steadiness_js.py)."""
    assert vectors.PATH.read_text() == vectors.rendered(), "rerun: python -m tests.vectors.steadiness"
    loaded = json.loads(vectors.PATH.read_text())
    assert len(loaded["observe"]) >= 40 and len(loaded["derive"]) >= 40 and len(loaded["top_emotion"]) >= 30


def test_a_pages_window_gives_the_gateway_the_pages_new_steady_emotion() -> None:
    """What POST /api/mood relies on: whenever a page's steady emotion changes, replaying the page's last
    `window` frames from the steady emotion the gateway holds gives the page's new one, also when the
    gateway lost the session (held None)."""
    rng = random.Random(7)
    checked = 0
    for _ in range(300):
        window = rng.randint(1, 7)
        votes = rng.randint(1, window)
        page = Steadiness(window, votes, 10, 60)
        state = page.session("page")
        faces: list[Emotion] = []
        for _ in range(40):
            emotion = rng.choice([H, S, N, Emotion.angry])
            before = state.stable
            after = page.observe(state, emotion)
            faces.append(emotion)
            if after == before:
                continue
            for held in (before, None):
                gateway = Steadiness(window, votes, 10, 60)
                session = gateway.session("g")
                session.stable = held
                assert gateway.derive(session, faces[-window:]) == after
                checked += 1
    assert checked > 300

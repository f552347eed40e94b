"""frontend/tracks.js, the one place that decides which tracks the page shows, run in headless Chromium on its
own (served from a plain static server, no services): what each frame asks the gateway for, which
requests a pick makes, and that only the newest request's answer may draw."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser


@pytest.fixture()
def tracks(camera_browser: Browser, frontend_url: str) -> Iterator[Page]:
    """A page on the frontend's origin with tracks.js and state.js imported as `window.t`, `window.s`."""
    context = camera_browser.new_context()
    page = context.new_page()
    page.goto(f"{frontend_url}/style.css")
    page.evaluate("""async () => {
        window.t = await import('/tracks.js');
        window.s = await import('/state.js');
    }""")
    yield page
    context.close()


def run(page: Page, script: str) -> Any:
    return page.evaluate(f"() => {{ const {{t, s}} = window; {script} }}")


def test_frames_ask_for_tracks_once_after_start_then_when_the_mood_changes(tracks: Page) -> None:
    assert run(tracks, "return t.frameRecommend();") == "always"
    run(tracks, "t.frameAnswered('always');")
    assert run(tracks, "return t.frameRecommend();") == "auto"
    run(tracks, "t.cameraStarted();")
    assert run(tracks, "return t.frameRecommend();") == "always"
    assert run(tracks, "return t.photoRecommend();") == "always"


def test_a_picked_emotion_holds_until_the_camera_is_chosen_again(tracks: Page) -> None:
    req = run(tracks, "return t.pick('sad');")
    assert {k: req[k] for k in ("emotion", "source", "strategy", "limit")} == {
        "emotion": "sad",
        "source": "picked",
        "strategy": "match",
        "limit": 10,
    }
    assert run(tracks, "return [t.frameRecommend(), t.photoRecommend()];") == ["never", "never"]
    # A frame's tracks (asked for before the pick) do not replace the picked list.
    answer = "{tracks_updated: true, tracks: [{id: 'x'}], stable_emotion: 'happy'}"
    assert run(tracks, f"return t.fromAnswer({answer}, 'camera');") is None
    lifted = run(tracks, "return t.pickStrategy('lift');")
    assert (lifted["emotion"], lifted["strategy"]) == ("sad", "lift")
    # Back to the camera: the next frame asks for tracks, and it may draw them.
    assert run(tracks, "return t.pick('');") is None
    assert run(tracks, "return t.frameRecommend();") == "always"
    drawn = run(tracks, f"return t.fromAnswer({answer}, 'camera');")
    assert drawn == {"tracks": [{"id": "x"}], "emotion": "happy", "source": "camera"}


def test_only_the_newest_request_may_draw(tracks: Page) -> None:
    assert run(
        tracks,
        """const first = t.pick('sad'), second = t.pick('fear');
           return [t.isNewest(first), t.isNewest(second)];""",
    ) == [False, True]
    # Tracks that came with a frame are newer than any /recommend still in flight.
    assert (
        run(
            tracks,
            """const picked = t.pick('sad'); t.pick('');
           t.fromAnswer({tracks_updated: true, tracks: [], stable_emotion: 'happy'}, 'camera');
           return t.isNewest(picked);""",
        )
        is False
    )


def test_without_a_pick_the_list_follows_the_last_photo_or_waits_for_the_camera(tracks: Page) -> None:
    assert run(tracks, "return [t.pickStrategy('lift'), t.waitingNote()];") == [
        None,
        "Tracks follow the camera when it runs.",
    ]
    photo = "{faces: [], emotion: 'sad', stable_emotion: 'sad'}"
    run(tracks, f"s.resultShown({photo}, 'photo', 0);")
    req = run(tracks, "return t.pickStrategy('match');")
    assert (req["emotion"], req["source"], req["strategy"]) == ("sad", "photo", "match")
    assert run(tracks, "return t.waitingNote();") is None
    again = run(tracks, "return t.pick('');")
    assert (again["emotion"], again["source"]) == ("sad", "photo")
    run(tracks, "s.cameraStarted(null);")
    run(tracks, "s.resultShown({faces: [], emotion: null, stable_emotion: null}, 'camera', 1);")
    assert run(tracks, "return [t.pick(''), t.waitingNote()];") == [None, None]

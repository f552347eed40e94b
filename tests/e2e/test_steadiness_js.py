"""frontend/steadiness.js and mood.js, on-device mode's steady emotion, run in headless Chromium on their
own (a plain static server, no services): the page's rule gives the gateway's answers on the shared
vectors (tests/vectors/steadiness.json, which pytest holds to services/gateway/steadiness.py), and the
page tells the gateway only what changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.vectors import steadiness as vectors

pytestmark = pytest.mark.browser


@pytest.fixture()
def modules(camera_browser: Browser, frontend_url: str) -> Iterator[Page]:
    context = camera_browser.new_context()
    page = context.new_page()
    page.goto(f"{frontend_url}/style.css")
    page.evaluate("""async () => {
        window.st = await import('/steadiness.js');
        window.mood = await import('/mood.js');
        window.s = await import('/state.js');
    }""")
    yield page
    context.close()


def test_the_pages_rule_gives_the_gateways_answers(modules: Page) -> None:
    v = json.loads(vectors.PATH.read_text())
    got = modules.evaluate(
        """(v) => ({
            observe: v.observe.map((c) => {
                const steady = new window.st.Steadiness(c.window, c.votes);
                return c.frames.map((f) => steady.observe(f));
            }),
            top: v.top_emotion.map((c) => window.st.topEmotion(c.probabilities, v.emotions)),
        })""",
        v,
    )
    assert got["observe"] == [c["stable"] for c in v["observe"]]
    assert got["top"] == [c["emotion"] for c in v["top_emotion"]]


def face(emotion: str, p: float = 0.7) -> dict[str, Any]:
    emotions = json.loads(vectors.PATH.read_text())["emotions"]
    rest = (1 - p) / (len(emotions) - 1)
    probabilities = {e: p if e == emotion else rest for e in emotions}
    return {"box": {"x": 0, "y": 0, "w": 50, "h": 50}, "emotion": emotion, "probabilities": probabilities}


def test_the_page_tells_the_gateway_only_changes(modules: Page) -> None:
    emotions = json.loads(vectors.PATH.read_text())["emotions"]
    modules.evaluate(
        """(emotions) => {
            window.s.setEmotions({emotions, steadiness: {window: 5, votes: 3}});
            window.mood.start();
            window.frame = (faces) => window.mood.observe({faces});
            window.due = (recommend = 'auto', strategy = 'match') =>
                window.mood.due({recommend, strategy, limit: 10});
        }""",
        emotions,
    )

    def frame(*faces: dict[str, Any]) -> Any:
        return modules.evaluate("(faces) => window.frame(faces)", list(faces))

    def due(recommend: str = "auto", strategy: str = "match") -> Any:
        return modules.evaluate("([r, s]) => window.due(r, s)", [recommend, strategy])

    def answered(
        stable: str, updated: bool = True, error: str | None = None, strategy: str = "match"
    ) -> None:
        answer = {"stable_emotion": stable, "tracks_updated": updated, "recommender_error": error}
        params = {"recommend": "auto", "strategy": strategy, "limit": 10}
        modules.evaluate("([a, p]) => window.mood.answered(a, p)", [answer, params])

    assert due() is None  # no face yet: nothing to tell
    assert frame() == {"emotion": None, "stable": None}
    assert frame(face("happy"), face("sad", 0.9)) == {"emotion": "happy", "stable": "happy"}  # the largest
    window = due()
    assert window == [[round(p, 4) for p in face("happy")["probabilities"].values()]]
    answered("happy")
    assert due() is None  # told
    assert due("always") is not None  # the camera chosen again: tracks asked for anyway
    assert due("never") is None  # a picked emotion: nothing to tell
    assert due(strategy="lift") is not None  # another choice of music
    frame(face("sad"))
    frame(face("sad"))
    assert due() is None  # two sad frames of three: still happy
    assert frame(face("sad")) == {"emotion": "sad", "stable": "sad"}
    assert len(due()) == 4  # the last frames with a face, oldest first
    answered("sad", updated=False, error="recommender unavailable")
    assert due() is not None  # no tracks came: to tell again
    answered("sad")
    assert due() is None
    for _ in range(6):
        frame(face("fear"))
    assert len(due()) == 5  # at most the window

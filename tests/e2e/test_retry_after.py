"""The page honours a shedding server's Retry-After: after a 503 that asks for a pause, the camera sends
its next frame no sooner (the page, its modules and a fake webcam in headless Chromium; the gateway's
answers are played by the browser's request routing)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Route

pytestmark = pytest.mark.browser

RETRY_AFTER_S = 5  # longer than the page's own retry pause, so that ignoring the header fails


def test_a_refused_frame_waits_as_long_as_retry_after_asks(
    camera_browser: Browser, frontend_url: str
) -> None:
    sent: list[float] = []

    def analyze(route: Route) -> None:
        sent.append(time.monotonic())
        route.fulfill(
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_S), "Content-Type": "application/json"},
            body=json.dumps({"detail": "emotion service busy: too many frames in flight"}),
        )

    def answer(body: dict) -> Callable[[Route], None]:
        return lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    context = camera_browser.new_context()
    page = context.new_page()
    emotions = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    page.route("**/api/emotions", answer({"emotions": emotions}))
    page.route("**/api/status", answer({"emotion": "ok", "recommender": "ok"}))
    page.route("**/analyze?*", analyze)
    try:
        page.goto(f"{frontend_url}/index.html?mode=server")
        deadline = time.monotonic() + 3 * RETRY_AFTER_S + 10
        while len(sent) < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert len(sent) >= 2, f"the camera sent {len(sent)} frame(s)"
        assert sent[1] - sent[0] >= RETRY_AFTER_S - 0.3
    finally:
        context.close()

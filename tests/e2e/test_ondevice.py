"""On-device mode in a real browser against the real services: the fake webcam's face is read in the page
(onnxruntime-web), no request carries an image, the face's emotion, the steady emotion and tracks show;
without WebAssembly, or with a model file missing, the page falls back to server mode, says why, and
still shows tracks. The user's choice of mode is remembered, and ?mode= forces one."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, expect, sync_playwright

from services.common.contracts import EMOTIONS
from services.launch import START_TIMEOUT_S, service
from tests.e2e.conftest import Browsers, gateway_env, offline_context, warm_models, webcam_clip
from tests.e2e.test_browser import TIMEOUT_MS, wait_for_face, wait_for_tracks

pytestmark = [pytest.mark.browser, pytest.mark.timeout(3 * START_TIMEOUT_S + 120)]

# The bound: after the models load, no request body over 4 KB.
MAX_BODY_BYTES = 4096
NEVER_LEAVE = "frames never leave this device"


@dataclass
class Sent:
    method: str
    url: str
    content_type: str
    size: int
    body: bytes


def watch(page: Page) -> list[Sent]:
    """Every request the page makes, with its body."""
    sent: list[Sent] = []

    def record(request: Request) -> None:
        body = request.post_data_buffer or b""
        sent.append(
            Sent(request.method, request.url, request.headers.get("content-type", ""), len(body), body)
        )

    page.on("request", record)
    return sent


def carries_an_image(s: Sent) -> bool:
    kind = s.content_type.lower()
    magic = (b"\xff\xd8\xff", b"\x89PNG", b"RIFF", b"GIF8")
    return kind.startswith(("image/", "multipart/")) or s.body.startswith(magic)


# A gateway's first visitor may wait for it to compress the models once (minutes on a busy 2-core machine);
# the page waits up to three minutes for them before it falls back.
LOAD_MS = 200_000


def mode_of(page: Page, mode: str) -> None:
    expect(page.locator("#mode")).to_have_attribute("data-mode", mode, timeout=LOAD_MS)


def test_on_device_mode_sends_no_image_and_shows_emotions_and_tracks(page: Page, gateway_url: str) -> None:
    sent = watch(page)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(gateway_url)
    mode_of(page, "ondevice")
    expect(page.locator("#mode-text")).to_contain_text("On-device mode")
    expect(page.locator("#privacy")).to_contain_text(NEVER_LEAVE)
    wait_for_face(page)
    ids = wait_for_tracks(page)
    emotion = page.locator("#emotion-now").text_content()
    stable = page.locator("#emotion-stable").text_content()
    assert emotion in EMOTIONS and stable in EMOTIONS
    assert page.locator("#faces").inner_text().startswith(f"Face 1: {emotion}")
    expect(page.locator(f"#bars li[data-emotion='{emotion}']")).to_have_class(re.compile("leading"))
    expect(page.locator("#tracks-for")).to_have_attribute("data-emotion", stable)
    assert len(set(ids)) == 10
    page.wait_for_timeout(3000)  # ten more frames
    assert page.locator("#timeline span").count() >= 5

    with_body = [s for s in sent if s.size]
    assert not [s.url for s in sent if carries_an_image(s)]
    assert not [(s.url, s.size) for s in with_body if s.size > MAX_BODY_BYTES]
    assert not [s.url for s in sent if re.search(r"/(analyze|predict)\b", s.url)]
    moods = [s for s in sent if s.url.split("?")[0].endswith("/api/mood")]
    # A still face: one steady emotion, told once (the page posts only when it changes).
    assert len(moods) == 1 and moods == with_body, [(s.method, s.url) for s in with_body]
    assert not errors


def test_the_choice_of_server_mode_is_remembered_and_the_address_can_force_a_mode(
    page: Page, gateway_url: str
) -> None:
    page.goto(gateway_url)
    mode_of(page, "ondevice")
    wait_for_tracks(page)
    with page.expect_request(lambda r: "/analyze?" in r.url, timeout=TIMEOUT_MS):
        page.get_by_role("button", name="Use server mode").click()
    mode_of(page, "server")
    expect(page.locator("#privacy")).not_to_contain_text(NEVER_LEAVE)
    expect(page.locator("#privacy")).to_contain_text("frames go only to this server")
    expect(page.locator("#mode-text")).to_contain_text("your choice")
    wait_for_face(page)

    page.reload()
    mode_of(page, "server")
    expect(page.locator("#mode-text")).to_contain_text("remembered")
    page.goto(f"{gateway_url}/?mode=ondevice")
    mode_of(page, "ondevice")
    expect(page.locator("#mode-text")).to_contain_text("?mode=ondevice")
    page.goto(f"{gateway_url}/")
    mode_of(page, "server")  # still the remembered choice
    page.get_by_role("button", name="Use on-device mode").click()
    mode_of(page, "ondevice")
    page.reload()
    mode_of(page, "ondevice")


def no_webassembly(page: Page) -> None:
    page.add_init_script("delete globalThis.WebAssembly;")


def missing_model(page: Page) -> None:
    page.route(re.compile(r".*/ondevice/models/.*"), lambda route: route.fulfill(status=404, body="gone"))


@pytest.mark.parametrize(
    ("breakage", "why"),
    [(no_webassembly, "WebAssembly"), (missing_model, "404")],
    ids=["no WebAssembly", "a model file answers 404"],
)
def test_the_page_falls_back_to_server_mode_and_says_why(
    page: Page, gateway_url: str, breakage: object, why: str
) -> None:
    assert callable(breakage)
    breakage(page)
    sent = watch(page)
    page.goto(gateway_url)
    mode_of(page, "server")
    expect(page.locator("#mode-text")).to_contain_text("Server mode")
    expect(page.locator("#mode-text")).to_contain_text("on-device mode could not start")
    expect(page.locator("#mode-text")).to_contain_text(why)
    expect(page.locator("#privacy")).not_to_contain_text(NEVER_LEAVE)
    wait_for_face(page)
    ids = wait_for_tracks(page)
    assert len(set(ids)) == 10
    assert any("/analyze" in s.url for s in sent) and not any("/api/mood" in s.url for s in sent)


def test_recommender_down_in_on_device_mode_is_reported_and_faces_go_on(
    page: Page, emotion_url: str, music_env: dict[str, str], redis_prefix: str
) -> None:
    sent = watch(page)
    with contextlib.ExitStack() as recommender_running:
        recommender = recommender_running.enter_context(
            service("recommender", env=music_env, timeout=START_TIMEOUT_S)
        )
        # The in-process cache, entries gone after a second, so the cache does not hide the outage.
        env = gateway_env(emotion_url, recommender, redis_prefix, REDIS_URL="", GATEWAY_CACHE_TTL_S="1")
        with service("gateway", env=env, timeout=START_TIMEOUT_S) as gateway:
            page.goto(gateway)
            mode_of(page, "ondevice")
            wait_for_tracks(page)
            recommender_running.close()
            page.wait_for_timeout(1100)  # the cached tracks expire
            # Back to the camera after a pick: the page asks the gateway for the steady emotion's tracks.
            page.get_by_role("button", name="fear", exact=True).click()
            alert = page.locator("#alerts [data-problem='recommender']")
            expect(alert).to_contain_text("Recommender is down", timeout=TIMEOUT_MS)
            told = len([s for s in sent if "/api/mood" in s.url])
            page.get_by_role("button", name="Camera (auto)").click()
            expect(page.locator("#tracks li.track")).to_have_count(10)  # the last list stays
            page.wait_for_timeout(2000)
            assert len([s for s in sent if "/api/mood" in s.url]) > told
            expect(alert).to_be_visible()
            # Faces are still read here, and no frame went anywhere.
            expect(page.locator("#overlay")).to_have_attribute("data-faces", "1")
            assert page.locator("#emotion-now").text_content() in EMOTIONS
            assert not [s.url for s in sent if carries_an_image(s)]


def check_on_device_page(url: str, face_png: Path) -> None:
    """What a user of a fresh clone's `make run` or of the compose stack sees at `url`: the page in
    on-device mode (the runtime and the models served by that gateway) reads the webcam's face and shows
    tracks, and no request carries an image, once the gateway has installed the runtime (at its first
    start, in the background: until then the page says so and uses server mode). For tests of those
    set-ups (tests/integration, tests/deploy)."""
    warm_models(url)
    with sync_playwright() as playwright:
        browser = Browsers(playwright, webcam_clip(face_png)).launch("fake")
        try:
            page = offline_context(browser).new_page()
            sent = watch(page)
            page.goto(url)
            mode_of(page, "ondevice")
            expect(page.locator("#privacy")).to_contain_text(NEVER_LEAVE)
            wait_for_face(page)
            wait_for_tracks(page)
        finally:
            browser.close()
    assert not [s.url for s in sent if carries_an_image(s)]
    assert not [(s.url, s.size) for s in sent if s.size > MAX_BODY_BYTES]

"""The page in a real browser against the real services: a fake webcam shows a face, the page draws its
box and label and lists tracks; the picker and match/lift change them; backends going down are reported
while the rest keeps working; a photo can stand in for a camera."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, expect

from services.common.contracts import EMOTIONS
from services.launch import START_TIMEOUT_S, service
from tests.e2e.conftest import Browsers, gateway_env, offline_context, readme_screenshot
from tests.gateway.faults import closed_url

# Its session fixtures start three services, each allowed START_TIMEOUT_S on a busy machine.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(3 * START_TIMEOUT_S + 60)]

# Frames take up to a second or two on a busy 2-core machine; the first also warms the models.
TIMEOUT_MS = 60_000
TRACK_LINK = re.compile(r"^https://open\.spotify\.com/track/[0-9A-Za-z]{22}$")


def wait_for_face(page: Page) -> None:
    expect(page.locator("#overlay")).to_have_attribute("data-faces", "1", timeout=TIMEOUT_MS)


def wait_for_tracks(page: Page, emotion: str | None = None) -> list[str]:
    tracks_for = page.locator("#tracks-for")
    if emotion:
        expect(tracks_for).to_have_attribute("data-emotion", emotion, timeout=TIMEOUT_MS)
    expect(page.locator("#tracks li.track")).to_have_count(10, timeout=TIMEOUT_MS)
    return page.locator("#tracks li.track").evaluate_all("items => items.map(li => li.dataset.trackId)")


def drawn_pixels(page: Page) -> int:
    """Non-transparent pixels on the overlay canvas: the box and label really were drawn."""
    return page.evaluate("""() => {
        const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
    }""")


def test_camera_face_box_emotion_and_tracks(page: Page, gateway_url: str, redis_prefix: str) -> None:
    page.goto(gateway_url)
    wait_for_face(page)
    assert drawn_pixels(page) > 500
    # Later frames carry the previous boxes, and the service searches only the region around them.
    expect(page.locator("#stage")).to_have_attribute("data-searched", "region", timeout=TIMEOUT_MS)
    faces = page.locator("#faces").inner_text()
    emotion = page.locator("#emotion-now").text_content()
    assert emotion in EMOTIONS and faces.startswith(f"Face 1: {emotion}")
    expect(page.locator(f"#bars li[data-emotion='{emotion}']")).to_have_class(re.compile("leading"))
    assert page.locator("#timeline span").count() >= 1

    ids = wait_for_tracks(page)
    stable = page.locator("#emotion-stable").text_content()
    expect(page.locator("#tracks-for")).to_have_attribute("data-emotion", stable)
    first = page.locator("#tracks li.track").first
    link = first.get_by_role("link", name=re.compile("Open .* in Spotify"))
    href = link.get_attribute("href")
    assert href is not None and TRACK_LINK.match(href)
    assert href.endswith(ids[0])
    assert (link.get_attribute("target"), link.get_attribute("rel")) == ("_blank", "noopener")
    expect(page.locator("#status")).to_have_text("Watching: camera on.")
    readme_screenshot(page)

    # The Spotify player is created only on request, for one track at a time.
    assert page.locator("#tracks iframe").count() == 0
    first.get_by_role("button", name="Show player").click()
    expect(first.locator("iframe")).to_have_attribute("src", f"https://open.spotify.com/embed/track/{ids[0]}")
    assert page.locator("#tracks iframe").count() == 1

    # The gateway cached the recommendation in the real Redis.
    client = redis.Redis.from_url("redis://127.0.0.1:6379/13")
    try:
        assert any(client.scan_iter(f"{redis_prefix}recommend:{stable}:match:10:*"))
    finally:
        client.close()


def test_picking_an_emotion_and_lift_change_the_tracks(page: Page, gateway_url: str) -> None:
    page.goto(gateway_url)
    camera_ids = wait_for_tracks(page)
    camera_emotion = page.locator("#tracks-for").get_attribute("data-emotion")
    picked = "sad" if camera_emotion != "sad" else "angry"

    button = page.get_by_role("button", name=picked, exact=True)
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")
    picked_ids = wait_for_tracks(page, picked)
    assert picked_ids != camera_ids
    expect(page.locator("#tracks-for")).to_contain_text("picked by you")

    page.get_by_role("button", name="Lift my mood").click()
    expect(page.locator("#tracks-for")).to_contain_text("lift", timeout=TIMEOUT_MS)
    lifted_ids = wait_for_tracks(page, picked)
    assert lifted_ids != picked_ids

    # Frames keep coming, but the pick holds until the camera is chosen again.
    wait_for_face(page)
    page.wait_for_timeout(1500)
    expect(page.locator("#tracks-for")).to_have_attribute("data-emotion", picked)
    page.get_by_role("button", name="Camera (auto)").click()
    expect(page.locator("#tracks-for")).to_contain_text("steady camera emotion", timeout=TIMEOUT_MS)
    expect(page.locator("#tracks-for")).to_have_attribute("data-emotion", camera_emotion)


STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"
)


def test_why_these_songs_map_under_a_strict_csp(page: Page, gateway_url: str, output_dir: Path) -> None:
    """The "Why these songs?" link opens the map of the list's emotion and strategy, drawn by an ES
    module that needs no inline script or style (the map page is served here with a strict CSP)."""
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)

    def with_csp(route) -> None:  # noqa: ANN001 (playwright's Route)
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": STRICT_CSP})

    page.route(re.compile(r".*/why\.html(\?.*)?$"), with_csp)
    page.goto(gateway_url)
    wait_for_tracks(page)
    page.get_by_role("button", name="fear", exact=True).click()
    wait_for_tracks(page, "fear")
    page.get_by_role("button", name="Lift my mood").click()
    expect(page.locator("#tracks-for")).to_contain_text("lift", timeout=TIMEOUT_MS)
    page.get_by_role("link", name="Why these songs?").click()
    expect(page).to_have_url(re.compile(r"why\.html\?emotion=fear&strategy=lift"))
    expect(page.locator("#why-map circle")).to_have_count(10, timeout=TIMEOUT_MS)
    expect(page.locator("#why-tracks li")).to_have_count(10)
    expect(page.locator("#why-status")).to_contain_text("fear")
    assert page.locator("#why-map rect.map-region").count() == 4  # a lift walks four regions
    page.screenshot(path=output_dir / "why.png", full_page=True)
    page.select_option("#why-emotion", "happy")
    expect(page.locator("#why-status")).to_contain_text("happy", timeout=TIMEOUT_MS)
    assert not blocked, blocked


def test_recommender_down_is_reported_and_emotions_go_on(
    page: Page, emotion_url: str, music_env: dict[str, str], redis_prefix: str, output_dir: Path
) -> None:
    analyzed: list[int] = []
    page.on("response", lambda r: analyzed.append(r.status) if "/analyze" in r.url else None)
    with contextlib.ExitStack() as recommender_running:
        # Its own recommender, to stop mid-test; the in-process cache, with entries gone after a second,
        # so the cache does not hide the outage.
        recommender = recommender_running.enter_context(
            service("recommender", env=music_env, timeout=START_TIMEOUT_S)
        )
        env = gateway_env(emotion_url, recommender, redis_prefix, REDIS_URL="", GATEWAY_CACHE_TTL_S="1")
        with service("gateway", env=env, timeout=START_TIMEOUT_S) as gateway:
            page.goto(f"{gateway}/?mode=server")  # frames to /analyze (test_ondevice.py has on-device mode)
            wait_for_tracks(page)
            assert page.locator("#alerts .alert").count() == 0
            recommender_running.close()
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{recommender}/healthz")
            frames_before = len(analyzed)
            page.wait_for_timeout(1100)  # the cached tracks expire

            page.get_by_role("button", name="fear", exact=True).click()
            alert = page.locator("#alerts [data-problem='recommender']")
            expect(alert).to_contain_text("Recommender is down", timeout=TIMEOUT_MS)
            # Back to the camera: the forced recommendation for the next frame fails too.
            page.get_by_role("button", name="Camera (auto)").click()
            expect(page.locator("#tracks li.track")).to_have_count(10)  # the last list stays

            # Frames are still analysed: faces and emotions go on.
            page.wait_for_timeout(2000)
            assert analyzed[frames_before:].count(200) >= 1, "frames stopped being analysed"
            expect(page.locator("#overlay")).to_have_attribute("data-faces", "1")
            assert page.locator("#emotion-now").text_content() in EMOTIONS
            expect(page.locator("#alerts [data-problem='emotion']")).to_have_count(0)
            expect(alert).to_be_visible()
            page.screenshot(path=str(output_dir / "recommender_down.png"))


def test_emotion_service_down_is_reported(
    page: Page, recommender_url: str, redis_prefix: str, output_dir: Path
) -> None:
    env = gateway_env(closed_url(), recommender_url, redis_prefix)
    with service("gateway", env=env, timeout=START_TIMEOUT_S) as gateway:
        page.goto(f"{gateway}/?mode=server")  # on-device mode does not use the emotion service
        alert = page.locator("#alerts [data-problem='emotion']")
        expect(alert).to_contain_text("Emotion service is down", timeout=TIMEOUT_MS)
        # Tracks by hand still work.
        page.get_by_role("button", name="happy", exact=True).click()
        wait_for_tracks(page, "happy")
        expect(alert).to_be_visible()
        page.screenshot(path=str(output_dir / "emotion_down.png"))


def test_permission_denied_then_photo_upload(
    browsers: Browsers, gateway_url: str, face_png: Path, output_dir: Path
) -> None:
    browser: Browser = browsers.launch("denied")
    context = offline_context(browser)
    page = context.new_page()
    try:
        page.goto(gateway_url)
        expect(page.locator("#alerts [data-problem='camera']")).to_contain_text(
            "permission was denied", timeout=TIMEOUT_MS
        )
        page.locator("#photo-input").set_input_files(str(face_png))
        wait_for_face(page)
        expect(page.locator("#stage")).to_have_attribute("data-source", "photo")
        assert drawn_pixels(page) > 500
        expect(page.locator("#tracks-for")).to_contain_text("from the photo", timeout=TIMEOUT_MS)
        wait_for_tracks(page)
        expect(page.locator("#status")).to_have_text("Photo: 1 face(s).")
    finally:
        page.screenshot(path=str(output_dir / "test_permission_denied_then_photo_upload.png"))
        context.close()
        browser.close()


def test_phone_screen_and_keyboard(camera_browser: Browser, gateway_url: str, output_dir: Path) -> None:
    context = offline_context(camera_browser)
    page = context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.goto(gateway_url)
        wait_for_face(page)
        wait_for_tracks(page)
        # Nothing wider than the phone: no sideways scrolling.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390

        # Every control is reachable with Tab, in reading order, and shows where the focus is.
        reached = []
        for _ in range(40):
            page.keyboard.press("Tab")
            focused = page.evaluate("""() => {
                const el = document.activeElement;
                return [el.tagName, el.textContent.trim(), getComputedStyle(el).outlineStyle];
            }""")
            if focused[0] != "BODY":  # past the last control, focus leaves the page
                reached.append(focused[1:])
        names = [name for name, _ in reached]
        for control in (
            "Stop camera",
            "Analyse a photo…",
            "Camera (auto)",
            "sad",
            "Lift my mood",
            "Open in Spotify",
            "Show player",
        ):
            assert control in names, f"{control} is not reachable with the keyboard"
        assert names.index("Stop camera") < names.index("sad") < names.index("Open in Spotify")
        assert all(outline != "none" for _, outline in reached), reached

        # Space/Enter work on the real buttons.
        page.get_by_role("button", name="sad", exact=True).focus()
        page.keyboard.press("Enter")
        wait_for_tracks(page, "sad")
        page.get_by_role("button", name="Lift my mood").focus()
        page.keyboard.press("Space")
        expect(page.get_by_role("button", name="Lift my mood")).to_have_attribute("aria-pressed", "true")
        expect(page.get_by_role("status")).to_have_attribute("aria-live", "polite")
    finally:
        page.screenshot(path=str(output_dir / "test_phone_screen_and_keyboard.png"), full_page=True)
        context.close()

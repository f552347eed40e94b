"""Browser tests: the three services as real processes (synthetic catalog, real Redis), and Debian's
headless Chromium driven by Playwright, with a fake webcam that plays a real face photo."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, ViewportSize, sync_playwright

from samples.images import astronaut
from samples.music import recommender_env
from samples.servers import http_server
from services.launch import Stack, backends_env, stack
from tests.fixtures import REDIS_TEST_URL, redis_key_prefix
from tests.frontend.test_modules import FRONTEND

CHROMIUM = "/usr/bin/chromium"
BASE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


def _need(tool: str) -> None:
    """A machine without the tool skips the browser tests; CI, which installs it (.ci/run), fails."""
    if not shutil.which(tool):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {tool} is not installed (.ci/run installs it)", pytrace=False)
        pytest.skip(f"{tool} is not installed")


@pytest.fixture(scope="session")
def face_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("face") / "astronaut.png"
    Image.fromarray(astronaut()).save(path)
    return path


def webcam_clip(face_png: Path) -> Path:
    """A Y4M clip (the format Chromium's fake capture device reads; 4:2:0 chroma) of the still photo,
    letterboxed to 640x480 so the face keeps its proportions."""
    _need("ffmpeg")
    out = face_png.with_suffix(".y4m")
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-loop",
            "1",
            "-i",
            str(face_png),
            "-t",
            "2",
            "-r",
            "10",
            "-vf",
            "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2",
            "-pix_fmt",
            "yuv420p",
            str(out),
        ],
        check=True,
    )
    return out


@pytest.fixture(scope="session")
def fake_webcam(face_png: Path) -> Path:
    return webcam_clip(face_png)


@pytest.fixture(scope="session")
def music_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A small synthetic catalog; the real one when taking the README's screenshot (real track names)."""
    data = os.environ.get("MOODTUNES_DATA")
    if os.environ.get("MOODTUNES_README_SCREENSHOT") and data:
        music = Path(data) / "music"
        return {
            "RECOMMENDER_CATALOG_PATH": str(music / "catalog.parquet"),
            "RECOMMENDER_LABELLED_PATH": str(music / "mood_labelled.parquet"),
        }
    return recommender_env(tmp_path_factory.mktemp("music"))


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    with redis_key_prefix("e2e") as prefix:
        yield prefix


def gateway_env(emotion: str, recommender: str, redis_prefix: str, **extra: str) -> dict[str, str]:
    """A further gateway's settings (beside the stack's own) on the test Redis."""
    return {**backends_env(emotion, recommender), **redis_env(redis_prefix), **extra}


def redis_env(redis_prefix: str) -> dict[str, str]:
    return {"REDIS_URL": REDIS_TEST_URL, "GATEWAY_REDIS_PREFIX": redis_prefix}


@pytest.fixture(scope="session")
def running(music_env: dict[str, str], redis_prefix: str) -> Iterator[Stack]:
    with stack({"recommender": music_env, "gateway": redis_env(redis_prefix)}) as started:
        yield started


@pytest.fixture(scope="session")
def emotion_url(running: Stack) -> str:
    return running.emotion


@pytest.fixture(scope="session")
def recommender_url(running: Stack) -> str:
    return running.recommender


def warm_models(gateway: str) -> None:
    """Has the gateway compress the on-device models now: it does so once, at their first request, which
    takes a minute or more on a busy 2-core machine, longer than the tests wait for a face."""
    deadline = time.monotonic() + 300
    while True:  # the runtime is installed in the background at start (from a cache after the first)
        info = httpx.get(f"{gateway}/api/ondevice", timeout=60)
        installing = info.status_code == 200 and "being installed" in (info.json()["reason"] or "")
        if not installing or time.monotonic() > deadline:
            break
        time.sleep(1)
    if info.status_code != 200 or not info.json()["available"]:
        return  # the page will say why and use server mode
    for file in info.json()["files"].values():
        httpx.get(f"{gateway}{file['url']}", headers={"Accept-Encoding": "br, gzip"}, timeout=600)


@pytest.fixture(scope="session")
def gateway_url(running: Stack) -> str:
    warm_models(running.gateway)
    return running.gateway


@dataclass
class Browsers:
    playwright: Playwright
    webcam: Path

    def launch(self, camera: str = "fake") -> Browser:
        """camera: "fake" plays the face clip with permission granted; "denied" refuses permission."""
        _need(CHROMIUM)
        flags = list(BASE_FLAGS)
        if camera == "fake":
            flags += [
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={self.webcam}",
            ]
        else:
            flags += ["--use-fake-device-for-media-stream", "--deny-permission-prompts"]
        return self.playwright.chromium.launch(executable_path=CHROMIUM, args=flags)


# Per module: while Playwright's sync API is running, the main thread counts as running an asyncio
# loop, and tests of other modules that run their own loop (asyncio.run) would fail after these.
@pytest.fixture(scope="module")
def browsers(fake_webcam: Path) -> Iterator[Browsers]:
    with sync_playwright() as p:
        yield Browsers(p, fake_webcam)


@pytest.fixture(scope="module")
def camera_browser(browsers: Browsers) -> Iterator[Browser]:
    browser = browsers.launch("fake")
    yield browser
    browser.close()


def offline_context(browser: Browser) -> BrowserContext:
    """Only loopback exists here: anything else (the Spotify embed) is refused at once, not left to hang."""
    context = browser.new_context(viewport=VIEWPORT)
    context.route(lambda url: not url.startswith("http://127.0.0.1"), lambda route: route.abort())
    return context


@pytest.fixture()
def page(camera_browser: Browser, output_dir: Path, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page on the fake-camera browser; its screenshot is saved as test-output/<test>.png."""
    context = offline_context(camera_browser)
    page = context.new_page()
    yield page
    with contextlib.suppress(Exception):
        page.screenshot(path=str(output_dir / f"{request.node.name}.png"))
    context.close()


def readme_screenshot(page: Page) -> None:
    """MOODTUNES_README_SCREENSHOT=docs/screenshot.png saves the README's picture of the page."""
    target = os.environ.get("MOODTUNES_README_SCREENSHOT")
    if target:
        page.screenshot(path=target)


@pytest.fixture(scope="module")
def frontend_url() -> Iterator[str]:
    """frontend/ from a plain static server: the page's modules without any service behind them."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

    with http_server(functools.partial(Quiet, directory=str(FRONTEND))) as url:
        yield url

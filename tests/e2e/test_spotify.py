"""Save to Spotify in headless Chromium: the real services, a gateway configured for the fake Spotify
(samples/spotify.py: a real HTTP server on 127.0.0.1 checking PKCE, redirect URI, scopes, the bearer
token and the items limit), and the listener's clicks: connect, consent, save; refuse consent; a 429 on
the add call waited out. The stack's own gateway has no client id and shows no button."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from samples.spotify import FakeSpotify, fake_spotify, spotify_env
from services.launch import START_TIMEOUT_S, free_port, service
from tests.e2e.conftest import gateway_env
from tests.e2e.test_browser import TIMEOUT_MS, wait_for_tracks

pytestmark = [pytest.mark.browser, pytest.mark.timeout(3 * START_TIMEOUT_S + 60)]

ITEMS = r"/v1/playlists/[^/]+/items"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSpotify]:
    with fake_spotify() as running:
        yield running


@pytest.fixture(scope="module")
def spotify_gateway(
    fake: FakeSpotify, emotion_url: str, recommender_url: str, redis_prefix: str
) -> Iterator[str]:
    """A gateway with Save to Spotify on, its sessions in the test Redis; its callback is registered with
    the fake as a deployer registers it with Spotify."""
    port = free_port()
    fake.redirect_uris.add(f"http://127.0.0.1:{port}/api/spotify/callback")
    # A patient Redis timeout: the default (0.2 s) answers 503 when a busy machine stalls Redis.
    env = gateway_env(
        emotion_url, recommender_url, redis_prefix, GATEWAY_REDIS_TIMEOUT_S="2", **spotify_env(fake)
    )
    with service("gateway", port=port, env=env) as url:
        yield url


@pytest.fixture()
def empty(fake: FakeSpotify) -> FakeSpotify:
    with fake.lock:
        fake.playlists.clear()
        fake.requests.clear()
    return fake


def pick_list(page: Page, url: str) -> list[str]:
    """The page with a list picked by hand (it stays while the camera runs): the ten ids shown."""
    page.goto(url)
    expect(page.locator("#spotify-save")).to_be_visible(timeout=TIMEOUT_MS)
    page.locator("#emotion-picker button[data-emotion='sad']").click()
    return wait_for_tracks(page, "sad")


def consent(page: Page, decision: str) -> None:
    page.locator("#spotify-save").click()
    expect(page.locator("#scopes")).to_have_text("playlist-modify-private", timeout=TIMEOUT_MS)
    page.locator(f"#{decision}").click()


def test_connect_consent_save_and_the_page_links_to_the_playlist(
    page: Page, spotify_gateway: str, empty: FakeSpotify
) -> None:
    shown = pick_list(page, spotify_gateway)
    consent(page, "agree")
    link = page.locator("#spotify-link")
    expect(link).to_be_visible(timeout=TIMEOUT_MS)
    (playlist,) = empty.playlists.values()
    assert playlist.uris == [f"spotify:track:{t}" for t in shown]
    assert link.get_attribute("href") == f"https://open.spotify.com/playlist/{playlist.id}"
    expect(page.locator("#spotify-message")).to_contain_text(f"10 tracks saved to “{playlist.name}”")
    assert re.fullmatch(r"moodtunes: sad, \d{4}-\d\d-\d\d", playlist.name)
    assert page.url.rstrip("/") == spotify_gateway  # the callback's ?spotify= is gone from the address
    # The same list saved again (picked again after the trip to Spotify): nothing added, same playlist.
    page.locator("#emotion-picker button[data-emotion='sad']").click()
    assert wait_for_tracks(page, "sad") == shown
    page.locator("#spotify-save").click()
    expect(page.locator("#spotify-message")).to_contain_text("Already saved", timeout=TIMEOUT_MS)
    assert len(empty.playlists) == 1 and len(playlist.uris) == 10
    page.locator("#spotify-disconnect").click()
    expect(page.locator("#spotify-message")).to_contain_text("Disconnected")
    expect(page.locator("#spotify-disconnect")).to_be_hidden()


def test_refusing_consent_says_so_and_leaves_no_playlist(
    page: Page, spotify_gateway: str, empty: FakeSpotify
) -> None:
    pick_list(page, spotify_gateway)
    consent(page, "cancel")
    expect(page.locator("#spotify-message")).to_contain_text("did not allow", timeout=TIMEOUT_MS)
    expect(page.locator("#spotify-link")).to_have_count(0)
    assert empty.playlists == {}


def test_a_429_on_adding_is_waited_out_and_the_ten_tracks_arrive(
    page: Page, spotify_gateway: str, empty: FakeSpotify
) -> None:
    shown = pick_list(page, spotify_gateway)
    empty.fail("POST", ITEMS, 429, retry_after=2)
    consent(page, "agree")
    expect(page.locator("#spotify-link")).to_be_visible(timeout=TIMEOUT_MS)
    (playlist,) = empty.playlists.values()
    assert playlist.uris == [f"spotify:track:{t}" for t in shown]
    (limited, status), (retried, ok) = empty.calls("POST", ITEMS)
    assert (status, ok) == (429, 201) and retried - limited >= 2


def test_without_a_client_id_there_is_no_button(page: Page, gateway_url: str) -> None:
    page.goto(gateway_url)
    wait_for_tracks(page)
    expect(page.locator("#spotify")).to_be_hidden()

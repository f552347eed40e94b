"""Save to Spotify through the gateway (in-process) against the fake Spotify (samples/spotify.py, a real
HTTP server that checks PKCE, the redirect URI, scopes, the bearer token and the 100-items limit):
connect, consent, save, save again, the failures Spotify answers with, and the security rules (state
checked, no token in any log line or response, no client secret anywhere)."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from samples.spotify import FakeSpotify, fake_spotify
from services.__main__ import page_url
from services.common.contracts import Emotion, Strategy
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.spotify.account import SaveRequest, SpotifyAccounts
from services.gateway.spotify.settings import SpotifySettings
from services.gateway.spotify.vault import COOKIE, Session
from tests.fixtures import REDIS_TEST_URL

# Ten catalog-shaped track ids (22 base62 characters), in the order the page shows them.
TRACKS = [f"{i:02d}" + "A" * 19 + "x" for i in range(10)]
OTHER = [f"{i:02d}" + "B" * 19 + "y" for i in range(10)]
ITEMS = r"/v1/playlists/[^/]+/items"
CALLBACK = "http://testserver/api/spotify/callback"


@pytest.fixture()
def fake() -> Iterator[FakeSpotify]:
    with fake_spotify() as running:
        running.redirect_uris.add(CALLBACK)
        yield running


@contextlib.contextmanager
def gateway(
    fake: FakeSpotify,
    base_url: str = "http://testserver",
    redis: dict[str, Any] | None = None,
    **overrides: Any,
) -> Iterator[TestClient]:
    """The gateway in-process with Save to Spotify pointed at the fake (memory sessions unless `redis`
    gives the Redis settings); `overrides`: more Spotify settings."""
    spotify = SpotifySettings(
        client_id=fake.client_id, accounts_url=fake.accounts_url, api_url=fake.api_url, **overrides
    )
    settings = GatewaySettings.model_validate({"redis": {"url": None} | (redis or {}), "spotify": spotify})
    with TestClient(create_app(settings), base_url=base_url) as client:
        yield client


def consent(client: TestClient, fake: FakeSpotify, decision: str = "agree", public: bool = False) -> str:
    """Connect and answer Spotify's consent page: where the callback sends the listener."""
    started = client.post("/api/spotify/connect", json={"public": public})
    assert started.status_code == 200, started.text
    page = httpx.get(started.json()["authorize_url"])
    assert page.status_code == 200, page.text
    page_id = re.search(r'name="page" value="([^"]+)"', page.text)
    assert page_id
    decided = httpx.post(
        f"{fake.accounts_url}/authorize/decision", data={"page": page_id.group(1), "decision": decision}
    )
    assert decided.status_code == 302
    back = client.get(decided.headers["location"].removeprefix("http://testserver"), follow_redirects=False)
    assert back.status_code == 303
    return back.headers["location"]


def save(client: TestClient, tracks: list[str] = TRACKS, **extra: Any) -> httpx.Response:
    return client.post(
        "/api/spotify/save", json={"tracks": tracks, "emotion": "angry", "strategy": "lift"} | extra
    )


def only_playlist(fake: FakeSpotify) -> list[str]:
    assert len(fake.playlists) == 1, fake.playlists
    return next(iter(fake.playlists.values())).uris


def uris(ids: list[str]) -> list[str]:
    return [f"spotify:track:{t}" for t in ids]


def test_without_a_client_id_the_feature_is_off() -> None:
    with TestClient(
        create_app(GatewaySettings.model_validate({"redis": {"url": None}, "spotify": {"client_id": ""}}))
    ) as client:
        assert client.get("/api/spotify").json() == {
            "enabled": False,
            "connected": False,
            "scopes": [],
            "last_playlist": None,
        }
        assert client.post("/api/spotify/connect", json={}).status_code in (404, 405)  # as any unknown path
        assert client.post("/api/spotify/save", json={}).status_code in (404, 405)
        assert "/api/spotify/save" not in client.get("/openapi.json").json()["paths"]


def test_connect_consent_save_then_saving_again_adds_nothing(fake: FakeSpotify) -> None:
    with gateway(fake) as client:
        assert client.get("/api/spotify").json()["connected"] is False
        assert consent(client, fake) == "/?spotify=connected"
        status = client.get("/api/spotify").json()
        assert status["connected"] is True and status["scopes"] == ["playlist-modify-private"]
        saved = save(client)
        assert saved.status_code == 200, saved.text
        body = saved.json()
        assert only_playlist(fake) == uris(TRACKS)
        playlist = fake.playlists[body["id"]]
        assert body["url"] == f"https://open.spotify.com/playlist/{body['id']}"
        assert re.fullmatch(r"moodtunes: brighter after angry, \d{4}-\d\d-\d\d", playlist.name)
        assert "angry" in playlist.description and playlist.public is False
        assert (body["added"], body["already_there"]) == (10, 0)
        again = save(client).json()
        assert (again["id"], again["added"], again["already_there"]) == (body["id"], 0, 10)
        assert only_playlist(fake) == uris(TRACKS)
        # A new list goes to a new playlist, unless the listener asks to add it to the last one.
        appended = save(client, TRACKS[:5] + OTHER, append=True).json()
        assert (appended["id"], appended["added"], appended["already_there"]) == (body["id"], 10, 5)
        assert only_playlist(fake) == uris(TRACKS + OTHER)
        assert save(client, OTHER, emotion="sad").json()["id"] != body["id"]
        assert client.get("/api/spotify").json()["last_playlist"]["url"].endswith(fake.playlists.popitem()[0])


def test_refusing_consent_leaves_no_playlist(fake: FakeSpotify) -> None:
    with gateway(fake) as client:
        assert consent(client, fake, decision="cancel") == "/?spotify=denied"
        assert client.get("/api/spotify").json()["connected"] is False
        refused = save(client)
        assert refused.status_code == 401 and "not connected" in refused.json()["detail"]
        assert fake.playlists == {} and fake.token_fields == []


def test_a_wrong_state_is_refused_and_nothing_is_exchanged(fake: FakeSpotify) -> None:
    with gateway(fake) as client:
        started = client.post("/api/spotify/connect", json={})
        url = started.json()["authorize_url"]
        state = re.search(r"state=([^&]+)", url)
        assert state
        for wrong in ("forged-state", "", state.group(1)[:-1]):
            back = client.get(
                "/api/spotify/callback", params={"code": "any", "state": wrong}, follow_redirects=False
            )
            assert back.headers["location"] == "/?spotify=refused"
        # Without the session's cookie (another browser, a forged link) nothing matches either.
        stranger = TestClient(client.app)
        back = stranger.get(
            "/api/spotify/callback", params={"code": "any", "state": state.group(1)}, follow_redirects=False
        )
        assert back.headers["location"] == "/?spotify=expired"
        assert fake.token_fields == [] and client.get("/api/spotify").json()["connected"] is False


def test_no_token_in_any_log_line_or_response_and_no_client_secret(
    fake: FakeSpotify, caplog: pytest.LogCaptureFixture
) -> None:
    responses: list[httpx.Response] = []
    caplog.set_level(logging.DEBUG)
    with gateway(fake) as client:
        client.event_hooks["response"].append(lambda r: responses.append(r))
        consent(client, fake)
        fake.fail("POST", ITEMS, 429, retry_after=1)
        assert save(client).status_code == 200
        fake.expire_tokens()  # the next call refreshes the token
        assert save(client, OTHER).status_code == 200
        fake.fail("POST", ITEMS, 500, times=2)
        assert save(client, OTHER, emotion="sad").status_code == 502
        for path in ("/", "/main.js", "/spotify.js", "/api/spotify"):
            client.get(path)
        client.delete("/api/spotify")
    assert len(fake.issued) == 4  # two access and two refresh tokens
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # the capture saw the HTTP layer
    for record in caplog.records:
        text = f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        assert not any(token in text for token in fake.issued), record.getMessage()
    assert len(responses) >= 10
    for response in responses:
        response.read()
        text = f"{response.text} {response.headers!r}"
        assert not any(token in text for token in fake.issued), response.url
        assert "secret" not in response.text.lower() or response.url.path.endswith(".js"), response.url
    # PKCE only: no client secret ever went to Spotify either (nor exists to be sent to the browser).
    assert all("client_secret" not in fields for fields in fake.token_fields) and not fake.basic_auth_seen
    assert not any("secret" in name for name in SpotifySettings.model_fields)


def test_a_429_is_waited_out_for_its_retry_after(fake: FakeSpotify) -> None:
    with gateway(fake) as client:
        consent(client, fake)
        fake.fail("POST", ITEMS, 429, retry_after=2)
        assert save(client).status_code == 200
        (first, status), (second, ok) = fake.calls("POST", ITEMS)
        assert (status, ok) == (429, 201) and second - first >= 2
        assert only_playlist(fake) == uris(TRACKS)


def test_a_long_retry_after_goes_to_the_page_and_a_retry_finishes_without_duplicates(
    fake: FakeSpotify,
) -> None:
    with gateway(fake, max_wait_s=5) as client:
        consent(client, fake)
        fake.fail("POST", ITEMS, 429, retry_after=120)
        busy = save(client)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "120"
        assert "wait 120 s" in busy.json()["detail"]
        assert only_playlist(fake) == []  # half done: the playlist exists, no track yet
        assert save(client).json()["added"] == 10
        assert only_playlist(fake) == uris(TRACKS)
        assert len(fake.calls("POST", r"/v1/me/playlists")) == 1


def test_spotify_failures_are_said_plainly(fake: FakeSpotify) -> None:
    with gateway(fake) as client:
        consent(client, fake)
        fake.fail("POST", r"/v1/me/playlists", 403, message="Insufficient client scope")
        forbidden = save(client)
        assert (
            forbidden.status_code == 403
            and forbidden.json()["detail"] == "Spotify refused: Insufficient client scope"
        )
        fake.fail("POST", ITEMS, 503, times=2)
        down = save(client)
        assert down.status_code == 502 and "HTTP 503" in down.json()["detail"]
        fake.fail("POST", ITEMS, 502, times=1)  # one 5xx is retried
        assert save(client).json()["added"] == 10
        assert only_playlist(fake) == uris(TRACKS)


def test_an_expired_token_is_refreshed_and_a_revoked_one_asks_to_connect_again(fake: FakeSpotify) -> None:
    with gateway(fake) as client:
        consent(client, fake)
        fake.expire_tokens()
        assert save(client).status_code == 200
        assert [f for f in fake.token_fields if "refresh_token" in f]
        fake.expire_tokens()
        fake.revoke_refresh_tokens()
        expired = save(client, OTHER)
        assert expired.status_code == 401 and "connect again" in expired.json()["detail"]
        assert client.get("/api/spotify").json()["connected"] is False


def test_a_public_playlist_needs_its_own_consent(fake: FakeSpotify) -> None:
    with gateway(fake) as client:
        consent(client, fake)
        assert save(client, public=True).status_code == 401
        consent(client, fake, public=True)
        assert client.get("/api/spotify").json()["scopes"] == ["playlist-modify-public"]
        assert save(client, public=True).status_code == 200
        assert next(iter(fake.playlists.values())).public is True


def test_more_than_a_hundred_tracks_go_in_batches_in_order(fake: FakeSpotify) -> None:
    many = [f"{i:03d}" + "C" * 18 + "z" for i in range(250)]
    with gateway(fake) as client:
        consent(client, fake)
        spotify = client.app.state.spotify  # type: ignore[attr-defined]
        assert isinstance(spotify, SpotifyAccounts)
        session = Session.from_cookie(client.cookies.get(COOKIE))
        assert client.portal is not None
        saved = client.portal.call(spotify.save, session, SaveRequest(many, Emotion.sad, Strategy.match))
        assert saved.added == 250
    assert only_playlist(fake) == uris(many)
    assert [s for _, s in fake.calls("POST", ITEMS)] == [201, 201, 201]


def test_localhost_is_refused_with_the_address_to_use(fake: FakeSpotify) -> None:
    with gateway(fake, base_url="http://localhost:8000") as client:
        refused = client.post("/api/spotify/connect", json={})
        assert refused.status_code == 400 and "http://127.0.0.1:8000" in refused.json()["detail"]
    with gateway(
        fake, base_url="http://127.0.0.1:8000", redirect_uri="https://music.example/api/spotify/callback"
    ) as client:
        elsewhere = client.post("/api/spotify/connect", json={})
        assert elsewhere.status_code == 400 and "https://music.example" in elsewhere.json()["detail"]


def test_behind_a_proxy_that_ends_tls_the_forwarded_scheme_is_believed_from_it_alone(
    fake: FakeSpotify,
) -> None:
    """The Kubernetes Ingress ends TLS: the gateway sees http, and only the proxy's X-Forwarded-Proto
    says the page is on https (GATEWAY_FORWARDED_ALLOW_IPS names the proxies; deploy/k8s sets it)."""
    callback = "https://moodtunes.example.com/api/spotify/callback"
    fake.redirect_uris.add(callback)
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}

    def behind(trusted: str) -> TestClient:
        spotify = SpotifySettings(
            client_id=fake.client_id,
            accounts_url=fake.accounts_url,
            api_url=fake.api_url,
            redirect_uri=callback,
        )
        settings = GatewaySettings.model_validate(
            {"redis": {"url": None}, "spotify": spotify, "forwarded_allow_ips": trusted}
        )
        return TestClient(create_app(settings), base_url="http://moodtunes.example.com")

    # TestClient's peer is "testclient": not one of these proxies, so its headers change nothing.
    with behind("10.0.0.0/8, 192.168.0.1") as client:
        refused = client.post("/api/spotify/connect", json={}, headers=proxied)
        assert refused.status_code == 400 and "https://moodtunes.example.com" in refused.json()["detail"]
    with behind("testclient") as client:
        started = client.post("/api/spotify/connect", json={}, headers=proxied)
        assert started.status_code == 200, started.text
        assert "secure" in started.headers["set-cookie"].lower().split("; ")
        # The fake's consent page answers only for a registered redirect URI.
        assert httpx.get(started.json()["authorize_url"]).status_code == 200


def test_bad_input_gets_a_clear_4xx(fake: FakeSpotify) -> None:
    with gateway(fake) as client:
        consent(client, fake)
        assert save(client, ["not-a-track-id"]).status_code == 422
        assert save(client, []).status_code == 422
        assert save(client, emotion="bored").status_code == 422
        assert fake.playlists == {}


def test_disconnect_deletes_the_encrypted_tokens_from_redis(fake: FakeSpotify, redis_prefix: str) -> None:
    store = redis.Redis.from_url(REDIS_TEST_URL, decode_responses=True)
    # A patient Redis timeout: the gateway's default (0.2 s) answers 503 when a busy machine stalls Redis.
    options = {"url": REDIS_TEST_URL, "prefix": redis_prefix, "timeout_s": 2}
    with gateway(fake, redis=options, session_ttl_s=600) as client:
        consent(client, fake)
        assert save(client).status_code == 200
        keys = store.keys(f"{redis_prefix}spotify:*")
        assert len(keys) == 1
        stored = store.get(keys[0])
        assert stored and not any(token in stored for token in fake.issued) and "playlist" not in stored
        assert 0 < store.ttl(keys[0]) <= 600
        assert client.delete("/api/spotify").json()["connected"] is False
        assert store.keys(f"{redis_prefix}spotify:*") == []
        assert save(client).status_code == 401
    store.close()


def test_make_run_points_at_the_loopback_address_when_spotify_is_configured() -> None:
    assert page_url({}, 8000) == "http://localhost:8000"
    assert page_url({"MOODTUNES_SPOTIFY_CLIENT_ID": " "}, 8000) == "http://localhost:8000"
    assert page_url({"MOODTUNES_SPOTIFY_CLIENT_ID": "abc"}, 8000) == "http://127.0.0.1:8000"


def test_the_page_is_allowed_no_spotify_origin(fake: FakeSpotify) -> None:
    """The gateway talks to Spotify, the page only to its own origin: configuring Spotify widens nothing."""
    with gateway(fake) as client:
        policy = client.get("/").headers["content-security-policy"]
        connect = next(d for d in policy.split(";") if d.strip().startswith("connect-src"))
        assert connect.split()[1:] == ["'self'"]
        assert fake.accounts_url not in policy and fake.api_url.removesuffix("/v1") not in policy

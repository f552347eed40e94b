"""The scraper, driven through spotipy against a fake Spotify Web API served over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest

from samples.music import catalog as synthetic_catalog
from samples.music import track_ids
from services.recommender.catalog import FEATURES
from training.music import scraper

WORDS = ("happy", "sad")
RNG = np.random.default_rng(7)
# Per word two playlists whose names hold it and one whose name does not; the first has 150 tracks (2 pages).
KEYS = [(w, i) for w in WORDS for i in range(3)]
PID = dict(zip(KEYS, track_ids(RNG, len(KEYS)), strict=True))
PLAYLISTS = {PID[w, i]: (w, f"My {w.title()} Mix {i}" if i < 2 else "Unrelated") for w, i in KEYS}
TRACKS = {PID[w, i]: track_ids(RNG, 150 if (w, i) == ("happy", 0) else 30) for w, i in KEYS}


def items_path(word: str, i: int) -> str:
    return f"/v1/playlists/{PID[word, i]}/items"


class FakeSpotify(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.features_status = 200
        self.throttle: set[str] = set()  # paths answered 429 once
        self.broken: set[str] = set()  # paths answered 500 always
        self.hits: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}
        # What the fake found wrong in a request: an assert in the server's thread would only end that
        # thread, so the test asserts this list instead (run() does, after every scrape).
        self.errors: list[str] = []

    def handle_error(self, request: object, client_address: object) -> None:
        self.errors.append(f"handler raised: {traceback.format_exc()}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeSpotify

    def log_message(self, *_: object) -> None:
        pass

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        form = parse_qs(self.rfile.read(length).decode())
        if (
            self.path != "/api/token"
            or form.get("grant_type") != ["client_credentials"]
            or not self.headers.get("Authorization", "").startswith("Basic ")
        ):
            self._send(400, {"error": "invalid_client"})
            return
        self._send(200, {"access_token": "fake-token", "token_type": "Bearer", "expires_in": 3600})

    def do_GET(self) -> None:
        url = urlparse(self.path)
        url = url._replace(path=url.path.rstrip("/"))  # spotipy asks for /v1/audio-features/?ids=
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        srv = self.server
        srv.hits[url.path] += 1
        srv.times.setdefault(url.path, []).append(time.monotonic())
        if self.headers.get("Authorization") != "Bearer fake-token":
            self._send(401, {"error": {"status": 401, "message": "No token provided"}})
        elif url.path in srv.throttle:
            srv.throttle.discard(url.path)
            self._send(
                429, {"error": {"status": 429, "message": "API rate limit exceeded"}}, {"Retry-After": "1"}
            )
        elif url.path in srv.broken:
            self._send(500, {"error": {"status": 500, "message": "Server error"}})
        elif url.path == "/v1/search":
            self._search(query)
        elif url.path.startswith("/v1/playlists/"):
            self._playlist(url.path.split("/")[3], query)
        elif url.path == "/v1/audio-features":
            self._features(query["ids"].split(","))
        else:
            self._send(404, {"error": {"status": 404, "message": "Not found"}})

    def _search(self, query: dict[str, str]) -> None:
        if query.get("type") != "playlist":
            self.server.errors.append(f"search for type={query.get('type')!r}, not playlists")
            self._send(400, {"error": {"status": 400, "message": "Bad search type"}})
            return
        word = query["q"]
        items = [
            {"id": p, "name": name, "type": "playlist"} for p, (w, name) in PLAYLISTS.items() if w == word
        ]
        self._send(200, {"playlists": {"items": [None, *items], "next": None, "total": len(items) + 1}})

    def _playlist(self, playlist: str, query: dict[str, str]) -> None:
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100))
        ids = TRACKS[playlist]
        items: list[dict[str, object]] = [
            {
                "track": {
                    "id": t,
                    "type": "track",
                    "name": f"Song {t[:4]}",
                    "popularity": 50,
                    "duration_ms": 200_000,
                    "artists": [{"name": f"Artist {t[0]}"}],
                    "album": {"name": "Album", "release_date": "2020-01-01"},
                }
            }
            for t in ids[offset : offset + limit]
        ]
        if offset == 0:
            items += [{"track": None}, {"track": {"id": None, "is_local": True, "name": "local.mp3"}}]
        nxt = (
            f"{self.server.base}/v1/playlists/{playlist}/items?offset={offset + limit}&limit={limit}"
            if offset + limit < len(ids)
            else None
        )
        self._send(200, {"items": items, "next": nxt, "offset": offset, "limit": limit, "total": len(ids)})

    def _features(self, ids: list[str]) -> None:
        if self.server.features_status == 403:
            self._send(403, {"error": {"status": 403, "message": "Forbidden"}})
            return
        rng = np.random.default_rng(0)
        answer = [
            None
            if i == 0
            else {
                "id": t,
                **{f: float(rng.uniform(0, 1)) for f in FEATURES},
                "tempo": 120.0,
                "loudness": -7.0,
                "key": 5,
                "mode": 1,
            }
            for i, t in enumerate(ids)
        ]
        self._send(200, {"audio_features": answer})


@pytest.fixture()
def fake() -> Iterator[FakeSpotify]:
    server = FakeSpotify()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture()
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "fake-id")
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", "fake-secret")


def run(fake: FakeSpotify, tmp_path: Path, *extra: str) -> int:
    code = scraper.main(
        [
            "--out",
            str(tmp_path / "scraped.parquet"),
            "--words",
            ",".join(WORDS),
            "--api-url",
            f"{fake.base}/v1/",
            "--token-url",
            f"{fake.base}/api/token",
            "--catalog",
            str(tmp_path / "none.parquet"),
            "--backoff",
            "0",
            "--no-progress",
            *extra,
        ]
    )
    assert fake.errors == []
    return code


def matching_tracks(word: str) -> set[str]:
    return {
        t
        for p, ids in TRACKS.items()
        if PLAYLISTS[p] == (word, PLAYLISTS[p][1]) and PLAYLISTS[p][1] != "Unrelated"
        for t in ids
    }


@pytest.mark.usefixtures("credentials")
def test_scrape_with_audio_features_pages_and_honours_429(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.throttle.add("/v1/search")
    assert run(fake, tmp_path) == 0
    df = pd.read_parquet(tmp_path / "scraped.parquet")
    missing = pd.read_csv(tmp_path / "scraped.missing.csv")
    everything = set(df["track_id"]) | set(missing["track_id"])
    assert everything == matching_tracks("happy") | matching_tracks("sad")  # both pages, no 'Unrelated'
    assert set(TRACKS[PID["happy", 0]][100:]) <= everything
    assert fake.hits[items_path("happy", 0)] == 2
    assert (df.loc[df["track_id"].isin(matching_tracks("happy")), "label"] == "happy").all()
    assert (df["features_from"] == "api").all() and df[list(FEATURES)].notna().all().all()
    # The first id of each feature batch came back null: reported as lacking features.
    assert len(missing) == fake.hits["/v1/audio-features"] > 0
    # spotipy retried the 429 itself, after the Retry-After second.
    assert fake.hits["/v1/search"] == len(WORDS) + 1
    first, second = fake.times["/v1/search"][:2]
    assert second - first >= 0.9


@pytest.mark.usefixtures("credentials")
def test_audio_features_403_falls_back_to_the_catalog(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.features_status = 403
    known = sorted(matching_tracks("sad"))[:10]
    cat = synthetic_catalog(n=10)
    cat["track_id"] = known
    cat.to_parquet(tmp_path / "catalog.parquet")
    assert run(fake, tmp_path, "--catalog", str(tmp_path / "catalog.parquet")) == 0
    df = pd.read_parquet(tmp_path / "scraped.parquet")
    assert sorted(df["track_id"]) == known and (df["features_from"] == "catalog").all()
    assert df.set_index("track_id").loc[known, "valence"].tolist() == cat["valence"].tolist()
    missing = pd.read_csv(tmp_path / "scraped.missing.csv")
    assert len(missing) == len(matching_tracks("happy") | matching_tracks("sad")) - 10
    assert fake.hits["/v1/audio-features"] == 1  # no further calls once refused


@pytest.mark.usefixtures("credentials")
def test_resumes_from_its_state_file(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.broken.add(items_path("sad", 1))
    assert run(fake, tmp_path, "--retries", "1") == 1
    state = json.loads((tmp_path / "scraped.state.json").read_text())
    assert state["done"] == {"happy": [PID["happy", 0], PID["happy", 1]], "sad": [PID["sad", 0]]}
    assert fake.hits[items_path("sad", 1)] == 2  # one try + one retry
    fake.broken.clear()
    fake.hits.clear()
    assert run(fake, tmp_path) == 0
    assert fake.hits[items_path("sad", 1)] == 1 and fake.hits[items_path("happy", 0)] == 0
    df = pd.read_parquet(tmp_path / "scraped.parquet")
    assert len(df) + len(pd.read_csv(tmp_path / "scraped.missing.csv")) == len(
        matching_tracks("happy") | matching_tracks("sad")
    )


@pytest.mark.usefixtures("credentials")
def test_without_status_retries_a_429_stops_the_scrape_resumably(fake: FakeSpotify, tmp_path: Path) -> None:
    fake.throttle.add("/v1/search")
    assert run(fake, tmp_path, "--retries", "0") == 1
    assert fake.hits["/v1/search"] == 1
    fake.hits.clear()
    assert run(fake, tmp_path, "--retries", "0") == 0


def test_missing_credentials_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    assert scraper.main(["--out", str(tmp_path / "x.parquet")]) == 2
    assert "SPOTIPY_CLIENT_ID" in capsys.readouterr().err

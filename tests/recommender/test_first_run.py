"""A fresh installation: no catalog configured or found, so the recommender downloads the two public files
from a local HTTP server (the addresses are settings), checks them, builds the catalog in its cache and
serves it; every failure leaves no partial file and says what went wrong and what to set."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from samples import music as synthetic
from samples.upstream import MOODS, SONGS, Files, fresh_install, serving
from services.common.contracts import EMOTIONS
from services.launch import free_port, service
from services.recommender.app import create_app
from services.recommender.settings import FirstRunSettings

WAIT_S = 60.0
HOW_TO = (
    "To use a local copy, set RECOMMENDER_FIRST_RUN_CATALOG_URL to the path of spotify_songs.csv (or put "
    "the file in {cache}/sources/); or set RECOMMENDER_CATALOG_PATH and RECOMMENDER_LABELLED_PATH to a "
    "catalog and labelled tracks built with `python -m training.music.importer`."
)


def expectations(songs: bytes, moods: bytes, song_rows: int, mood_rows: int) -> dict[str, str]:
    return {
        "RECOMMENDER_FIRST_RUN_CATALOG_BYTES": str(len(songs)),
        "RECOMMENDER_FIRST_RUN_CATALOG_SHA256": hashlib.sha256(songs).hexdigest(),
        "RECOMMENDER_FIRST_RUN_CATALOG_ROWS": str(song_rows),
        "RECOMMENDER_FIRST_RUN_MOODS_BYTES": str(len(moods)),
        "RECOMMENDER_FIRST_RUN_MOODS_SHA256": hashlib.sha256(moods).hexdigest(),
        "RECOMMENDER_FIRST_RUN_MOODS_ROWS": str(mood_rows),
    }


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes, dict[str, str]]:
    """Small files in the two upstream formats (the catalog: 600 tracks by 120 artists; data_moods' four
    moods only) and the expectations that describe them."""
    rng = np.random.default_rng(7)
    songs = synthetic.tidytuesday(600, rng, artists=120).to_csv(index=False).encode()
    moods = synthetic.moods(240, rng, centred=True).to_csv(index=False).encode()
    return songs, moods, expectations(songs, moods, 600, 240)


def _wait_settled(client: TestClient) -> httpx.Response:
    """/readyz once the first run has finished, one way or the other."""
    deadline = time.monotonic() + WAIT_S
    while True:
        r = client.get("/readyz")
        if r.status_code == 200 or not r.json()["reason"].startswith("no music catalog yet"):
            return r
        assert time.monotonic() < deadline, f"first run still going after {WAIT_S}s: {r.json()}"
        time.sleep(0.1)


def _files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _started(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> contextlib.AbstractContextManager:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return TestClient(create_app())


def _serves_every_emotion(get: Callable[..., httpx.Response]) -> None:
    for emotion in EMOTIONS:
        r = get("/recommend", params={"emotion": emotion})
        assert r.status_code == 200, r.text
        tracks = r.json()["tracks"]
        assert len(tracks) == 10 and len({t["id"] for t in tracks}) == 10, emotion


def test_fresh_install_downloads_builds_and_serves_every_emotion(
    synthetic_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    songs, moods, expected = synthetic_files
    files = Files({SONGS: songs, MOODS: moods})
    with serving(files) as url, _started(monkeypatch, fresh_install(tmp_path, url) | expected) as client:
        assert client.get("/healthz").status_code == 200  # up at once, while the download runs
        assert _wait_settled(client).status_code == 200
        _serves_every_emotion(client.get)
    assert sorted(files.requests) == [MOODS, SONGS]
    assert _files_in(tmp_path) == [
        "catalog.parquet",
        "mood_labelled.parquet",
        f"sources/{MOODS}",
        f"sources/{SONGS}",
    ]
    assert (tmp_path / "sources" / SONGS).read_bytes() == songs


def test_a_cached_catalog_is_used_without_a_second_download(
    synthetic_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    songs, moods, expected = synthetic_files
    files = Files({SONGS: songs, MOODS: moods})
    with serving(files) as url:
        env = fresh_install(tmp_path, url) | expected
        with _started(monkeypatch, env) as client:
            assert _wait_settled(client).status_code == 200
        assert len(files.requests) == 2
        with _started(monkeypatch, env) as client:
            assert client.get("/readyz").status_code == 200  # ready at start-up: no background work
            assert client.get("/recommend?emotion=sad").status_code == 200
        # A lost catalog is rebuilt from the downloaded files kept in the cache, without the network.
        (tmp_path / "catalog.parquet").unlink()
        with _started(monkeypatch, env) as client:
            assert _wait_settled(client).status_code == 200
    assert len(files.requests) == 2
    assert (tmp_path / "catalog.parquet").is_file()


def test_a_local_copy_named_by_the_settings_is_used(
    synthetic_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the failure messages advise: the address settings may name local files."""
    songs, moods, expected = synthetic_files
    (tmp_path / SONGS).write_bytes(songs)
    (tmp_path / MOODS).write_bytes(moods)
    env = fresh_install(tmp_path / "cache", "unused") | expected
    env |= {
        "RECOMMENDER_FIRST_RUN_CATALOG_URL": str(tmp_path / SONGS),
        "RECOMMENDER_FIRST_RUN_MOODS_URL": f"file://{tmp_path / MOODS}",
    }
    with _started(monkeypatch, env) as client:
        assert _wait_settled(client).status_code == 200
    assert _files_in(tmp_path / "cache") == ["catalog.parquet", "mood_labelled.parquet"]


def _fails(
    monkeypatch: pytest.MonkeyPatch,
    cache: Path,
    files: Files,
    expected: dict[str, str],
    url: str | None = None,
    kept: tuple[str, ...] = (),
) -> str:
    """Runs a first run that must fail (not trying again); returns its message after checking the
    service's answers and that only `kept` (complete, checked downloads) is left in the cache."""
    env = expected | {"RECOMMENDER_FIRST_RUN_RETRY_S": "0"}
    with serving(files) as served, _started(monkeypatch, fresh_install(cache, url or served) | env) as client:
        ready = _wait_settled(client)
        assert ready.status_code == 503 and client.get("/healthz").status_code == 200
        message = ready.json()["reason"]
        r = client.get("/recommend?emotion=happy")
        assert r.status_code == 503 and r.json()["detail"] == message
    assert _files_in(cache) == list(kept), "a failed first run left files behind"
    return message


def test_wrong_digest(synthetic_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    songs, moods, expected = synthetic_files
    corrupted = bytearray(songs)
    corrupted[len(songs) // 2] ^= 1  # same size, one bit flipped
    files = Files({SONGS: bytes(corrupted), MOODS: moods})
    message = _fails(monkeypatch, tmp_path, files, expected)
    url = message.split(" from ", 1)[1].split(f"/{SONGS}")[0]
    assert message == (
        f"no music catalog: {SONGS} from {url}/{SONGS}: sha256 is {hashlib.sha256(corrupted).hexdigest()}, "
        f"expected {hashlib.sha256(songs).hexdigest()} (the content differs). Nothing half-written was "
        "kept. " + HOW_TO.format(cache=tmp_path)
    )


def test_truncated_download(synthetic_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    songs, moods, expected = synthetic_files
    message = _fails(monkeypatch, tmp_path, Files({SONGS: songs, MOODS: moods}, short={SONGS}), expected)
    assert f": cut short: the connection closed after {len(songs) // 2:,} of {len(songs):,} bytes." in message
    assert message.endswith(HOW_TO.format(cache=tmp_path))


def test_cut_short_without_content_length(
    synthetic_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    songs, moods, expected = synthetic_files
    files = Files({SONGS: songs, MOODS: moods}, no_length={MOODS})
    message = _fails(monkeypatch, tmp_path, files, expected, kept=(f"sources/{SONGS}",))
    assert f"{MOODS} from " in message
    assert f": cut short: got {len(moods) // 2:,} bytes, expected {len(moods):,}." in message
    assert "set RECOMMENDER_FIRST_RUN_MOODS_URL to the path of data_moods.csv" in message


def test_a_network_failure_is_tried_again(
    synthetic_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    songs, moods, expected = synthetic_files
    files = Files({SONGS: songs, MOODS: moods}, short_once={SONGS})
    retry = expected | {"RECOMMENDER_FIRST_RUN_RETRY_S": "0.2"}
    with serving(files) as url, _started(monkeypatch, fresh_install(tmp_path, url) | retry) as client:
        deadline = time.monotonic() + WAIT_S
        while (r := client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, r.json()
            time.sleep(0.05)
    assert sorted(files.requests) == [MOODS, SONGS, SONGS]
    assert _files_in(tmp_path) == [
        "catalog.parquet",
        "mood_labelled.parquet",
        f"sources/{MOODS}",
        f"sources/{SONGS}",
    ]
    tried = [r.getMessage() for r in caplog.records if "Trying again" in r.getMessage()]
    assert len(tried) == 1 and ": cut short: " in tried[0] and tried[0].endswith(" Trying again in 0.2 s.")


def test_a_file_that_is_not_the_expected_one_is_not_tried_again(
    synthetic_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    songs, moods, expected = synthetic_files
    files = Files({SONGS: songs, MOODS: moods})
    wrong = expected | {
        "RECOMMENDER_FIRST_RUN_RETRY_S": "0.1",
        "RECOMMENDER_FIRST_RUN_CATALOG_SHA256": "0" * 64,
    }
    with serving(files) as url, _started(monkeypatch, fresh_install(tmp_path, url) | wrong) as client:
        reason = _wait_settled(client).json()["reason"]
        time.sleep(0.5)
        assert client.get("/readyz").json()["reason"] == reason
    assert "sha256 is" in reason and "Trying again" not in reason
    assert files.requests == [SONGS]


def test_stopping_mid_download_leaves_nothing(
    synthetic_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    songs, moods, expected = synthetic_files
    files = Files({SONGS: songs, MOODS: moods}, stall={SONGS})
    with serving(files) as url:
        with _started(monkeypatch, fresh_install(tmp_path, url) | expected) as client:
            deadline = time.monotonic() + WAIT_S
            while "40%" not in (reason := client.get("/readyz").json()["reason"]):
                assert time.monotonic() < deadline, reason
                time.sleep(0.05)
            assert reason.startswith(f"no music catalog yet: downloading {SONGS}: 40% (0.1 MB of 0.2 MB)")
            assert [p.name for p in (tmp_path / "sources").iterdir()][0].endswith(".part")
        files.release.set()  # the service stopped while the server still held the rest back
    assert _files_in(tmp_path) == []


def test_unreachable_address(synthetic_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, expected = synthetic_files
    closed = f"http://127.0.0.1:{free_port()}"  # bound, then released: nothing listens there
    message = _fails(monkeypatch, tmp_path, Files({}), expected, url=closed)
    assert message.startswith(f"no music catalog: {SONGS} from {closed}/{SONGS}: cannot connect (")
    assert message.endswith(HOW_TO.format(cache=tmp_path))


def test_wrong_row_count(synthetic_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    songs, moods, expected = synthetic_files
    expected = expected | {"RECOMMENDER_FIRST_RUN_MOODS_ROWS": "686"}
    files = Files({SONGS: songs, MOODS: moods})
    message = _fails(monkeypatch, tmp_path, files, expected, kept=(f"sources/{SONGS}",))
    assert f"{MOODS} from " in message and ": 240 rows, expected 686." in message


@pytest.mark.data
def test_real_public_files_from_a_local_server(data_dir: Path, tmp_path: Path) -> None:
    """The real upstream bytes, checked against the built-in expectations (the sources README's), in a real
    service process: downloaded, built, and 10 tracks for each of the seven emotions from data_moods'
    four moods."""
    sources = data_dir / "music" / "sources"
    files = Files({name: (sources / name).read_bytes() for name in (SONGS, MOODS)})
    with serving(files) as url:
        env = fresh_install(tmp_path, url)
        with service("recommender", env=env, timeout=180) as recommender:
            _serves_every_emotion(lambda path, params: httpx.get(f"{recommender}{path}", params=params))
    assert sorted(files.requests) == [MOODS, SONGS]
    assert "catalog.parquet" in _files_in(tmp_path)


def test_the_cache_has_a_default_without_a_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOODTUNES_CACHE_DIR", raising=False)
    assert FirstRunSettings().cache_dir == Path.home() / ".cache" / "moodtunes"

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", no_home)
    assert FirstRunSettings().cache_dir.name == "moodtunes-cache"

"""A fresh clone in compose: no data folder is mounted, so the recommender's first start downloads the two
public files (here from a stand-in host on the compose network, tests/deploy/upstream.yml), builds the
catalog into the `cache` volume and serves every emotion through the gateway; a restart reuses the
cache instead of downloading again."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from samples import music
from samples.upstream import MOODS, SONGS
from services.common.contracts import EMOTIONS
from tests.deploy.conftest import Compose, readable, running, until
from tests.recommender.test_first_run import expectations

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def fresh(images: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    upstream = tmp_path_factory.mktemp("upstream")
    rng = np.random.default_rng(7)
    songs = music.tidytuesday(600, rng, artists=120).to_csv(index=False).encode()
    moods = music.moods(240, rng, centred=True).to_csv(index=False).encode()
    (upstream / SONGS).write_bytes(songs)
    (upstream / MOODS).write_bytes(moods)
    settings = expectations(songs, moods, 600, 240) | {"UPSTREAM_DIR": str(readable(upstream))}
    here = Path(__file__).with_name("upstream.yml")
    with running(Compose(images, files=(here,), settings=settings)) as compose:
        yield compose


def _downloads(compose: Compose) -> list[str]:
    return re.findall(r'"GET /(\S+) HTTP', compose("logs", "--no-color", "upstream"))


def _every_emotion_has_ten_tracks(compose: Compose) -> bool:
    # A new seed each time: the gateway's cache must not answer for the recommender.
    seed = int(time.monotonic() * 1000) % 1_000_000
    for emotion in EMOTIONS:
        params: dict[str, str | int] = {"emotion": emotion, "limit": 10, "seed": seed}
        resp = httpx.get(f"{compose.url}/recommend", params=params, timeout=30)
        if resp.status_code != 200 or len(resp.json()["tracks"]) != 10:
            return False
    return True


def test_without_data_the_catalog_is_downloaded_once_and_kept_in_the_cache_volume(fresh: Compose) -> None:
    until(lambda: httpx.get(f"{fresh.url}/readyz", timeout=5).status_code == 200, 240, "gateway ready")
    until(lambda: _every_emotion_has_ten_tracks(fresh), 180, "10 tracks for every emotion")
    assert sorted(_downloads(fresh)) == sorted([SONGS, MOODS])

    fresh("restart", "recommender", timeout=120)
    until(lambda: _every_emotion_has_ten_tracks(fresh), 120, "10 tracks for every emotion after a restart")
    assert sorted(_downloads(fresh)) == sorted([SONGS, MOODS]), "the cached catalog was downloaded again"

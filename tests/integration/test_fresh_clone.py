"""A fresh clone's `make run`: `python -m services` with no data folder and nothing configured downloads
the two public files (here from a local server with their real bytes), shows its progress in the
terminal, and then the gateway serves 10 tracks for every emotion, and the page in on-device mode (the
runtime and the models from that gateway) reads a webcam's face in headless Chromium and shows tracks."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from samples.images import astronaut
from samples.upstream import MOODS, SONGS, Files, fresh_install, serving
from services.common.contracts import EMOTIONS
from tests.e2e.test_ondevice import check_on_device_page
from tests.procs import python_m_services

# The catalog's build, then the page's first load of the models (the gateway compresses them once).
pytestmark = [pytest.mark.data, pytest.mark.timeout(900)]
READY_S = 180.0


def test_make_run_on_a_fresh_clone_downloads_and_serves_every_emotion(data_dir: Path, tmp_path: Path) -> None:
    sources = data_dir / "music" / "sources"
    files = Files({name: (sources / name).read_bytes() for name in (SONGS, MOODS)})
    (tmp_path / "data").mkdir()  # MOODTUNES_DATA with no music/: what a clone without ../shared sees
    with serving(files) as url:
        env = fresh_install(tmp_path / "cache", url) | {"MOODTUNES_DATA": str(tmp_path / "data")}
        with python_m_services(env) as running:
            gateway = f"http://127.0.0.1:{running.port_of['gateway']}"
            deadline = time.monotonic() + READY_S
            while (
                r := httpx.get(f"{gateway}/recommend", params={"emotion": "angry"}, timeout=10)
            ).status_code != 200:
                assert r.status_code == 503, r.text
                assert time.monotonic() < deadline, f"no music after {READY_S:g} s: {r.text}"
                time.sleep(0.5)
            for emotion in EMOTIONS:
                tracks = httpx.get(f"{gateway}/recommend", params={"emotion": emotion}, timeout=10).json()[
                    "tracks"
                ]
                assert len(tracks) == 10 and len({t["id"] for t in tracks}) == 10, emotion
            face = tmp_path / "face.png"
            Image.fromarray(astronaut()).save(face)
            check_on_device_page(gateway, face)
            terminal = list(running.terminal)
    assert sorted(files.requests) == [MOODS, SONGS]
    # The recommender's own progress lines (the gateway also relays its not-ready reason, which quotes them).
    progress = [
        m[1]
        for line in terminal
        if "no music catalog yet" not in line and (m := re.search(rf"downloading {SONGS}: (\d+)% \(", line))
    ]
    assert progress == [str(p) for p in range(10, 101, 10)], terminal
    assert any(f"{SONGS}: 7,971,379 bytes, sha256 as expected, 32,833 rows" in line for line in terminal)

"""The service as a real process, as its container runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from services.common.paths import REPO
from services.launch import free_port, metrics_url, service, service_args

# Generous: on a busy 2-core machine importing the stack alone has taken 40 s.
STARTUP_S = 180


METRICS_PORT = free_port()


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with service(
        "emotion", env={"EMOTION_THREADS": "1"}, timeout=STARTUP_S, metrics_port=METRICS_PORT
    ) as base:
        yield base


def test_real_process_predicts(url: str, face_jpeg: bytes) -> None:
    r = httpx.post(f"{url}/predict", content=face_jpeg, headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert r.status_code == 200, r.text
    assert len(r.json()["faces"]) == 1
    assert "X-Request-ID" in r.headers
    m = httpx.post(f"{url}/predict", files={"image": ("f.jpg", face_jpeg, "image/jpeg")}, timeout=60)
    assert m.json()["faces"] == r.json()["faces"]
    bad = httpx.post(f"{url}/predict", content=b"nope", headers={"Content-Type": "text/plain"}, timeout=60)
    assert bad.status_code == 415 and bad.json()["detail"]
    assert "emotion_faces_per_frame" in httpx.get(metrics_url(METRICS_PORT), timeout=60).text
    # The public port has no /metrics: only the operator's scraper reaches them.
    assert httpx.get(f"{url}/metrics", timeout=60).status_code == 404


def test_concurrent_requests_in_a_real_process(url: str, face_jpeg: bytes) -> None:
    """Eight frames at once: the thread pool runs them in parallel, and every answer is complete."""
    with httpx.Client(base_url=url, timeout=120) as client:

        def post(_: int) -> httpx.Response:
            return client.post("/predict", content=face_jpeg, headers={"Content-Type": "image/jpeg"})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, range(16)))
    assert [r.status_code for r in answers] == [200] * 16
    assert len({str(r.json()["faces"]) for r in answers}) == 1


def test_bad_model_path_stops_startup_with_a_clear_error(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "services", *service_args("emotion", "127.0.0.1", free_port())],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "EMOTION_MODEL_PATH": str(tmp_path / "none.onnx")},
        capture_output=True,
        text=True,
        timeout=STARTUP_S,
    )
    assert proc.returncode != 0
    assert "emotion model not found" in proc.stderr

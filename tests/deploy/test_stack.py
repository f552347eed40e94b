"""`docker compose up` as a user runs it, through the published gateway on 127.0.0.1 only: a photo
becomes a face and tracks; the on-device page gets its runtime (installed in the gateway image at build)
and the emotion service's graphs, compressed and immutable, and its moods become tracks; the cache is
Redis; a dead emotion container gives a quick 503 and comes back; the training job's model is served
after a restart; and `down -v` leaves nothing. The tests run in file order against one stack
(tests/deploy/conftest.py)."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Any

import httpx
import pytest
import yaml

from samples.images import astronaut_jpeg
from services.common.contracts import EMOTIONS
from services.common.paths import REPO
from services.gateway import ortweb
from services.gateway.ondevice import IMMUTABLE
from services.launch import METRICS_PORTS, metrics_url
from tests.deploy.conftest import Compose, until

# The first test also builds the images (minutes when nothing is cached) and starts the stack.
pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]

PHOTO = astronaut_jpeg()
SHIPPED_MODEL = REPO / "services" / "emotion" / "model"
CARD = "/app/services/emotion/model/emotion.int8.card.json"
SCRAPE = "import urllib.request; print(urllib.request.urlopen('{url}', timeout=10).read().decode())"


def _analyze(stack: Compose, timeout: float = 30) -> httpx.Response:
    photo = {"image": ("astronaut.jpg", PHOTO, "image/jpeg")}
    return httpx.post(f"{stack.url}/analyze", files=photo, timeout=timeout)


def _answer_with_tracks(stack: Compose) -> dict[str, Any] | None:
    resp = _analyze(stack)
    return resp.json() if resp.status_code == 200 and resp.json()["tracks"] else None


def _gateway_metrics(stack: Compose) -> str:
    """From the gateway's metrics port, which compose does not publish: read inside its container."""
    url = metrics_url(METRICS_PORTS["gateway"])
    return stack("exec", "-T", "gateway", "python", "-c", SCRAPE.format(url=url), timeout=60)


def _cache_hits(stack: Compose) -> float:
    metrics = _gateway_metrics(stack)
    found = re.search(r'gateway_recommend_cache_total\{backend="redis",result="hit"\} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0


def test_a_photo_through_the_gateway_gives_a_face_and_tracks(stack: Compose) -> None:
    until(lambda: httpx.get(f"{stack.url}/readyz", timeout=5).status_code == 200, 240, "gateway ready")
    # The recommender may still be loading its catalog when the gateway is up.
    answer = until(lambda: _answer_with_tracks(stack), 120, "/analyze with tracks")
    face = answer["faces"][0]
    assert face["emotion"] in EMOTIONS and face["box"]["w"] > 0
    assert answer["recommender_error"] is None
    assert {"id", "name", "url"} <= set(answer["tracks"][0])


def _ondevice(stack: Compose) -> dict[str, Any] | None:
    info = httpx.get(f"{stack.url}/api/ondevice", timeout=30).json()
    return info if info["available"] else None


def _fetch(stack: Compose, url: str, etag_again: bool = True) -> httpx.Response:
    """A file as the browser fetches it (brotli or gzip), its headers checked: immutable, by ETag."""
    got = httpx.get(f"{stack.url}{url}", headers={"Accept-Encoding": "br, gzip"}, timeout=30)
    assert got.status_code == 200, (url, got.status_code, got.text[:200])
    assert got.headers["cache-control"] == IMMUTABLE, url
    assert got.headers["content-encoding"] == "br" and got.headers["vary"] == "Accept-Encoding", url
    again = httpx.get(f"{stack.url}{url}", headers={"If-None-Match": got.headers["etag"]}, timeout=30)
    assert again.status_code == 304 and again.content == b"", url
    return got


def test_the_on_device_page_gets_the_runtime_from_the_image_and_the_graphs(stack: Compose) -> None:
    info = until(lambda: _ondevice(stack), 120, "GET /api/ondevice available")
    # Installed when the image was built (from the tarball deploy/docker/wheels.sh checked), not at start.
    manifest = json.loads(
        stack("exec", "-T", "gateway", "cat", f"/app/onnxruntime-web/{ortweb.VERSION}/{ortweb.MANIFEST}")
    )
    assert manifest["integrity"] == ortweb.INTEGRITY
    runtime = info["runtime"]
    assert runtime["version"] == ortweb.VERSION
    for url, name, kind in (
        (runtime["wasm"], ortweb.WASM, "application/wasm"),
        (runtime["module"], ortweb.MODULE, "text/javascript"),
    ):
        got = _fetch(stack, url)
        assert got.headers["content-type"].startswith(kind), url
        assert hashlib.sha256(got.content).hexdigest() == manifest["files"][name]["sha256"], url
    for name in ("detect", "classify"):
        file = info["files"][name]
        got = _fetch(stack, file["url"])
        assert hashlib.sha256(got.content).hexdigest() == file["sha256"] and len(got.content) == file["bytes"]
    assert info["model"] == _analyze(stack).json()["model"]
    _gateway_memory_fits_its_kubernetes_resources(stack)


# The gateway's processes in its container: granian's (PID 1, the image's CMD) and its children (the
# worker), not what `docker exec` and the healthcheck start beside them. Resident and peak, in kB.
MEMORY = """
import glob, re
for status in glob.glob('/proc/[0-9]*/status'):
    try:
        text = open(status).read()
    except OSError:  # ended meanwhile
        continue
    pid, ppid = (re.search(rf'^{k}:\\s+(\\d+)', text, re.M).group(1) for k in ('Pid', 'PPid'))
    if '1' in (pid, ppid) and 'VmRSS' in text:  # a zombie has no memory lines
        print(*(re.search(rf'^{k}:\\s+(\\d+) kB', text, re.M).group(1) for k in ('VmRSS', 'VmHWM')))
"""


def _gateway_memory_fits_its_kubernetes_resources(stack: Compose) -> None:
    """The gateway holds the runtime and the graphs in memory once served: deploy/k8s must ask for that."""
    rows = [line.split() for line in stack("exec", "-T", "gateway", "python", "-c", MEMORY).splitlines()]
    rss, peak = (sum(int(row[i]) for row in rows if row) / 1024 for i in (0, 1))
    gateway = next(d for d in yaml.safe_load_all((REPO / "deploy" / "k8s" / "gateway.yaml").read_text()))
    resources = gateway["spec"]["template"]["spec"]["containers"][0]["resources"]
    mib = {k: int(resources[k]["memory"].removesuffix("Mi")) for k in ("requests", "limits")}
    print(f"deploy: gateway resident {rss:.0f} MiB, peak {peak:.0f} MiB (k8s: {mib})")
    assert rss <= mib["requests"] and peak <= mib["limits"], (rss, peak, mib)


def test_the_on_device_pages_moods_become_tracks(stack: Compose) -> None:
    happy = [0.04, 0.04, 0.04, 0.76, 0.04, 0.04, 0.04]
    assert EMOTIONS[happy.index(max(happy))] == "happy"
    window = httpx.get(f"{stack.url}/api/emotions", timeout=30).json()["steadiness"]["window"]
    body = {"frames": [{"faces": [happy]}] * window}
    resp = httpx.post(
        f"{stack.url}/api/mood", json=body, headers={"X-Session-ID": uuid.uuid4().hex}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["stable_emotion"] == "happy" and answer["tracks_updated"] and answer["tracks"]


def test_the_second_recommend_is_a_redis_hit(stack: Compose) -> None:
    url = f"{stack.url}/recommend?emotion=sad&limit=5&seed={uuid.uuid4().int % 1000}"
    hits = _cache_hits(stack)
    first, second = httpx.get(url, timeout=30), httpx.get(url, timeout=30)
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert second.json() == first.json()
    assert _cache_hits(stack) == hits + 1
    keys = stack("exec", "-T", "redis", "redis-cli", "dbsize").strip()
    assert int(keys.splitlines()[-1]) >= 1


def test_metrics_are_not_on_the_published_port(stack: Compose) -> None:
    assert httpx.get(f"{stack.url}/metrics", timeout=10).status_code == 404
    assert "http_requests_total" in _gateway_metrics(stack)


def test_a_killed_emotion_container_gives_a_quick_503_and_comes_back(stack: Compose) -> None:
    assert _analyze(stack).status_code == 200
    stack("kill", "emotion")
    start = time.monotonic()
    resp = _analyze(stack, timeout=30)
    elapsed = time.monotonic() - start
    assert resp.status_code == 503 and elapsed < 5, (resp.status_code, f"{elapsed:.1f} s", resp.text)
    assert "emotion" in resp.json()["detail"]

    stack("start", "emotion")
    start = time.monotonic()
    until(lambda: _analyze(stack).status_code == 200, 60, "/analyze after the emotion container restarted")
    print(f"deploy: emotion recovered {time.monotonic() - start:.0f} s after `start`")


def _digests() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(SHIPPED_MODEL.iterdir())}


def test_the_training_job_promotes_a_model_the_emotion_service_serves_after_a_restart(stack: Compose) -> None:
    shipped = _digests()
    before = until(lambda: _analyze(stack).json()["model"], 60, "emotion model name")
    # The pipeline's log lines (its verdict among them) go to stderr.
    run = ("run", "--rm", "-T", "training", "--config", "smoke", "--promote", "force")
    out = stack(*run, training=True, timeout=900, stderr=True)
    assert "promoted into" in out, out[-3000:]
    card = json.loads(stack("run", "--rm", "-T", "--entrypoint", "cat", "training", CARD, training=True))
    assert "--config smoke --promote force" in card["promotion"]["command"]

    stack("restart", "emotion", timeout=120)
    after = until(
        lambda: (r := _analyze(stack)).status_code == 200 and r.json()["model"], 120, "emotion after restart"
    )
    assert after != before
    assert after.startswith(card["name"])
    assert _digests() == shipped, "the repository's shipped model changed"


def test_down_with_volumes_leaves_nothing_of_the_project(stack: Compose) -> None:
    stack("down", "--volumes", "--remove-orphans", "--timeout", "10", training=True, timeout=180)
    assert stack.leftovers() == {"container": [], "network": [], "volume": []}

"""The on-device mode's files (services/gateway/ortweb.py, ondevice.py): the runtime installed from a
tarball checked against its integrity hash, nothing half-written kept when it is not the pinned one,
one log line when it cannot be had; the runtime and the emotion service's graphs served compressed under
content-addressed names with year-long immutable caching."""

from __future__ import annotations

import base64
import contextlib
import functools
import gzip
import hashlib
import io
import logging
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from samples.servers import http_server
from services.common.paths import REPO
from services.gateway import ortweb
from services.gateway.ondevice import IMMUTABLE
from tests.gateway.conftest import GatewayFactory

FILES = {ortweb.MODULE: b"export const answer = 42;\n" * 50, ortweb.WASM: bytes(range(256)) * 400}


def tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.fixture()
def fake_tgz(tmp_path: Path) -> Path:
    path = tmp_path / "registry" / f"onnxruntime-web-{ortweb.VERSION}.tgz"
    path.parent.mkdir()
    path.write_bytes(tarball(FILES))
    return path


@contextlib.contextmanager
def registry(folder: Path) -> Iterator[str]:
    """A registry stand-in on loopback serving the folder's files (a tarball download is a plain GET)."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

    with http_server(functools.partial(Quiet, directory=str(folder))) as url:
        yield url


def test_install_checks_the_integrity_and_keeps_only_the_pages_files(fake_tgz: Path, tmp_path: Path) -> None:
    root = tmp_path / "runtime"
    with registry(fake_tgz.parent) as url:
        manifest = ortweb.install(root, f"{url}/{fake_tgz.name}", integrity(fake_tgz.read_bytes()))
    folder = root / ortweb.VERSION
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [ortweb.MANIFEST, *FILES, *(f"{n}.gz" for n in FILES), *(f"{n}.br" for n in FILES)]
    )
    for name, data in FILES.items():
        assert (folder / name).read_bytes() == data
        assert gzip.decompress((folder / f"{name}.gz").read_bytes()) == data
        assert manifest["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    # Installed once: later starts read it, and never fetch again.
    assert ortweb.install(root, str(tmp_path / "gone.tgz"), integrity(b"other")) == manifest


def test_fetching_the_tarball_needs_only_the_standard_library(fake_tgz: Path, tmp_path: Path) -> None:
    """deploy/docker/wheels.sh runs it with the host's plain python3, before any virtualenv exists."""
    out = tmp_path / "wheels"
    out.mkdir()
    code = (
        "import sys; sys.modules['orjson'] = sys.modules['brotli'] = None\n"
        "from pathlib import Path\n"
        "from services.gateway import ortweb\n"
        "ortweb.fetch_tarball(Path(sys.argv[1]), sys.argv[2], sys.argv[3])"
    )
    args = [sys.executable, "-c", code, str(out), str(fake_tgz), integrity(fake_tgz.read_bytes())]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / ortweb.TARBALL).read_bytes() == fake_tgz.read_bytes()


def test_a_tarball_that_is_not_the_pinned_one_leaves_nothing(fake_tgz: Path, tmp_path: Path) -> None:
    root = tmp_path / "runtime"
    with pytest.raises(ortweb.RuntimeUnavailable, match="sha512 is .*expected"):
        ortweb.install(root, str(fake_tgz), integrity(b"the real one"))
    assert not root.exists() or not any(root.iterdir())
    # A stop in the middle of an install leaves a temporary folder: the next install removes it.
    (root / f".{ortweb.VERSION}.cut").mkdir(parents=True)
    ortweb.install(root, str(fake_tgz), integrity(fake_tgz.read_bytes()))
    assert sorted(p.name for p in root.iterdir()) == [ortweb.VERSION]


def test_a_tarball_without_the_files_or_a_failed_download_is_refused(fake_tgz: Path, tmp_path: Path) -> None:
    partial = tarball({ortweb.MODULE: b"x"})
    fake_tgz.write_bytes(partial)
    with pytest.raises(ortweb.RuntimeUnavailable, match="lacks the runtime's files"):
        ortweb.install(tmp_path / "a", str(fake_tgz), integrity(partial))
    with registry(fake_tgz.parent) as url, pytest.raises(ortweb.RuntimeUnavailable, match="HTTP 404"):
        ortweb.install(tmp_path / "b", f"{url}/missing.tgz", integrity(partial))
    with pytest.raises(ortweb.RuntimeUnavailable, match="cannot download"):
        ortweb.install(tmp_path / "c", "http://127.0.0.1:9/x.tgz", integrity(partial))


def test_the_pinned_integrity_is_npms_sha512() -> None:
    algorithm, _, digest = ortweb.INTEGRITY.partition("-")
    assert algorithm == "sha512" and len(base64.b64decode(digest)) == 64
    assert (
        f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{ortweb.VERSION}.tgz"
    ) == ortweb.URL


def test_without_the_runtime_the_page_is_told_why_and_the_log_says_it_once(
    make_gateway: GatewayFactory,
    emotion_url: str,
    recommender_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "moodtunes.gateway.ondevice")
    with make_gateway(
        emotion_url=emotion_url, recommender_url=recommender_url, runtime={"url": str(tmp_path / "none.tgz")}
    ) as client:
        info = wait_installed(client)
        assert info["available"] is False and info["runtime"]["available"] is False
        assert "onnxruntime-web" in info["reason"] and "none.tgz" in info["reason"]
        assert client.get(f"/ondevice/runtime/{ortweb.VERSION}/{ortweb.WASM}").status_code == 404
        # The models are there all the same (the page may still say which model the server runs).
        assert set(info["files"]) == {"detect", "classify"}
    lines = [r for r in caplog.records if r.name == "moodtunes.gateway.ondevice"]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "server mode" in lines[0].getMessage()


def wait_installed(client: TestClient) -> dict[str, Any]:
    """The on-device manifest once the start-up's install has ended (installed or not)."""
    deadline = time.monotonic() + 120
    while True:
        info = client.get("/api/ondevice").json()
        if "being installed" not in (info["runtime"]["reason"] or "") or time.monotonic() > deadline:
            return info
        time.sleep(0.05)


def test_the_runtime_and_the_graphs_are_served_compressed_and_immutable(
    make_gateway: GatewayFactory, emotion_url: str, recommender_url: str, fake_tgz: Path, tmp_path: Path
) -> None:
    root = tmp_path / "installed"
    ortweb.install(root, str(fake_tgz), integrity(fake_tgz.read_bytes()))
    with make_gateway(
        emotion_url=emotion_url, recommender_url=recommender_url, runtime={"dir": root}
    ) as client:
        info = wait_installed(client)
        assert info["available"] is True, info["reason"]
        assert client.get("/api/ondevice").headers["cache-control"] == "no-cache"
        wasm = client.get(info["runtime"]["wasm"], headers={"Accept-Encoding": "gzip"})
        assert wasm.status_code == 200
        assert wasm.headers["content-encoding"] == "gzip" and wasm.content == FILES[ortweb.WASM]
        assert wasm.headers["content-type"] == "application/wasm"
        assert wasm.headers["cache-control"] == IMMUTABLE
        module = client.get(info["runtime"]["module"], headers={"Accept-Encoding": "br, gzip"})
        assert module.headers["content-encoding"] == "br" and module.content == FILES[ortweb.MODULE]
        assert module.headers["content-type"].startswith("text/javascript")
        again = client.get(info["runtime"]["wasm"], headers={"If-None-Match": wasm.headers["etag"]})
        assert again.status_code == 304 and again.content == b""

        for kind in ("detect", "classify"):
            file = info["files"][kind]
            assert file["url"].startswith(f"/ondevice/models/{kind}.") and file["sha256"][:16] in file["url"]
            got = client.get(file["url"], headers={"Accept-Encoding": "gzip, br"})
            assert got.status_code == 200 and got.headers["cache-control"] == IMMUTABLE
            assert got.headers["content-encoding"] == "br"
            assert hashlib.sha256(got.content).hexdigest() == file["sha256"]
            assert len(got.content) == file["bytes"]
            plain = client.get(file["url"], headers={"Accept-Encoding": "identity"})
            assert "content-encoding" not in plain.headers and plain.content == got.content
        missing = client.get("/ondevice/models/detect.0000000000000000.onnx")
        assert missing.status_code == 404 and "GET /models" in missing.json()["detail"]

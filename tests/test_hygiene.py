"""Repository and runtime hygiene: no secrets in the files we ship, Spotify credentials only from the
environment, every dependency pinned in the lock, and uploaded images never written to disk or logged."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from PIL import Image
from skimage import data as skdata

from services.common.paths import REPO
from services.launch import SERVICES, free_port, wait_ready
from tests.evidence.audited import MARK

SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Spotify access token": re.compile(r"\bBQ[A-Za-z0-9_-]{100,}"),
    # Spotify client ids and secrets are 32 hex characters.
    "Spotify client credentials": re.compile(
        r"(?i)(?:client[_-]?(?:id|secret)|spotipy_client_\w+)['\"]?\s*[:=]\s*['\"]?[0-9a-f]{32}\b"
    ),
    "credential literal": re.compile(
        r"(?i)\b(?:api[_-]?key|secret|password|passwd|access[_-]?token)\b['\"]?\s*[:=]\s*['\"][^'\"\s]{16,}['\"]"
    ),
}
MAX_SCAN_BYTES = 2_000_000


def shipped_files() -> list[Path]:
    """Tracked files plus new ones git would add (not ignored): what a commit can contain."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [REPO / p for p in out.split("\0") if p and (REPO / p).is_file()]


def test_no_secrets_in_the_repository() -> None:
    files = shipped_files()
    assert any(f.name == "contracts.py" for f in files)  # the listing works
    assert not [f for f in files if f.name == ".env" or f.suffix in (".pem", ".key")]
    found = []
    for path in files:
        if path.stat().st_size > MAX_SCAN_BYTES:
            continue
        raw = path.read_bytes()
        if b"\0" in raw[:8192]:
            continue  # binary (ONNX model, images)
        text = raw.decode("utf-8", errors="replace")
        rel = path.relative_to(REPO)
        found += [f"{rel}: {kind}" for kind, rx in SECRET_PATTERNS.items() if rx.search(text)]
    assert not found, found


def test_the_secret_patterns_do_find_secrets() -> None:
    # Assembled at run time, so this file itself holds nothing the scan would flag.
    fake = {
        "private key": "-----BEGIN RSA " + "PRIVATE KEY-----",
        "Spotify client credentials": "SPOTIPY_CLIENT_SECRET=" + "0123456789abcdef" * 2,
        "Spotify access token": "BQ" + "x" * 120,
        "credential literal": "api_" + 'key = "' + "k" * 20 + '"',
    }
    for kind, text in fake.items():
        assert SECRET_PATTERNS[kind].search(text), kind


def test_spotify_credentials_come_only_from_the_environment() -> None:
    """Code that ships (not tests, whose fake Spotify server takes made-up credentials) never passes a
    literal client id or secret to spotipy."""
    literal = re.compile(r"client_(?:id|secret)\s*=\s*['\"][^'\"]+['\"]")
    code = [f for f in shipped_files() if f.suffix == ".py" and f.relative_to(REPO).parts[0] != "tests"]
    assert not [str(f.relative_to(REPO)) for f in code if literal.search(f.read_text())]


def _requirements(path: Path) -> list[Requirement]:
    reqs = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            reqs.append(Requirement(line))
    return reqs


def test_every_requirement_is_pinned_in_the_lock() -> None:
    lock = {}
    for req in _requirements(REPO / "requirements" / "constraints.txt"):
        pins = [s for s in req.specifier if s.operator == "=="]
        assert len(pins) == 1 and len(req.specifier) == 1, f"constraints.txt: {req} is not an exact pin"
        lock[canonicalize_name(req.name)] = pins[0].version
    files = sorted((REPO / "requirements").glob("*.txt"))
    assert len(files) > 2
    for path in files:
        for req in _requirements(path):
            name = canonicalize_name(req.name)
            assert name in lock, f"{path.name}: {req.name} is not pinned in constraints.txt"
            # A range in a requirements file must admit the locked version.
            assert req.specifier.contains(lock[name], prereleases=True), f"{path.name}: {req} vs {lock[name]}"


def _marked_images(marker: str) -> dict[str, tuple[bytes, str]]:
    """Uploads that carry `marker` inside (a JPEG comment, or the text itself). The big one is over
    Starlette's 1 MB in-memory limit for form files, where a spooled temporary file would appear."""
    rng = np.random.default_rng(0)
    face = np.asarray(Image.fromarray(skdata.astronaut()).resize((1400, 1400)))
    noisy = np.clip(face + rng.normal(0, 12, face.shape), 0, 255).astype(np.uint8)
    big, small = io.BytesIO(), io.BytesIO()
    Image.fromarray(noisy).save(big, "JPEG", quality=97, comment=marker.encode())
    Image.fromarray(skdata.astronaut()).save(small, "JPEG", quality=90, comment=marker.encode())
    assert big.tell() > 1024 * 1024
    return {
        "big": (big.getvalue(), "image/jpeg"),
        "small": (small.getvalue(), "image/jpeg"),
        "truncated": (small.getvalue()[:20_000], "image/jpeg"),
        "not an image": (f"not an image {marker}".encode() * 20, "image/jpeg"),
    }


@dataclass(frozen=True)
class AuditedRun:
    marker: str
    images: dict[str, tuple[bytes, str]]
    cwd_files: list[Path]
    tmp_files: list[Path]
    logs: dict[str, bytes]


@pytest.fixture(scope="module")
def audited_run(tmp_path_factory: pytest.TempPathFactory) -> AuditedRun:
    """The emotion service and the gateway under an audit hook (every file opened for writing is
    reported), all loggers at DEBUG, in an empty working directory with an empty TMPDIR, fed uploads that
    carry a random marker, as multipart and as raw bodies."""
    marker = os.urandom(12).hex()
    images = _marked_images(marker)
    root = tmp_path_factory.mktemp("audited")
    cwd, tmp, logs = root / "cwd", root / "tmp", root / "logs"
    for d in (cwd, tmp, logs):
        d.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TMPDIR": str(tmp),
        "PYTHONDONTWRITEBYTECODE": "1",
        "GATEWAY_RECOMMENDER_URL": f"http://127.0.0.1:{free_port()}",
    }  # not needed: recommend=never
    procs, urls = {}, {}
    try:
        for name in ("emotion", "gateway"):
            port = free_port()
            urls[name] = f"http://127.0.0.1:{port}"
            if name == "gateway":
                env["GATEWAY_EMOTION_URL"] = urls["emotion"]
            with (logs / f"{name}.log").open("wb") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "tests.evidence.audited", SERVICES[name][0], str(port)],
                    cwd=cwd,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            wait_ready(urls[name], 120, procs[name])

        targets = [
            (urls["emotion"], "/predict", {}),
            (urls["gateway"], "/predict", {}),
            (urls["gateway"], "/analyze", {"recommend": "never"}),
        ]
        for base, path, params in targets:
            for kind, (data, mime) in images.items():
                expected = 200 if kind in ("big", "small") else 422
                multipart = httpx.post(
                    f"{base}{path}", params=params, timeout=120, files={"image": ("photo.jpg", data, mime)}
                )
                assert multipart.status_code == expected, (path, kind, multipart.text)
                assert marker not in multipart.text
                if kind == "big":
                    continue  # only a multipart file could be spooled to disk; once per endpoint is enough
                raw = httpx.post(
                    f"{base}{path}", params=params, timeout=120, content=data, headers={"Content-Type": mime}
                )
                assert raw.status_code == expected and marker not in raw.text, (path, kind, raw.text)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(15)
    return AuditedRun(
        marker,
        images,
        list(cwd.iterdir()),
        list(tmp.iterdir()),
        {name: (logs / f"{name}.log").read_bytes() for name in procs},
    )


def test_uploaded_images_are_never_written_to_disk(audited_run: AuditedRun) -> None:
    for name, log in audited_run.logs.items():
        writes = [ln for ln in log.decode("utf-8", "replace").splitlines() if MARK in ln]
        assert not writes, (name, writes)
    assert not audited_run.cwd_files
    # ONNX Runtime's own telemetry file is not an upload; test_no_telemetry_is_written covers it.
    assert not [f for f in audited_run.tmp_files if f.name != ".ses"], audited_run.tmp_files


def test_uploaded_images_are_never_logged(audited_run: AuditedRun) -> None:
    for name, log in audited_run.logs.items():
        text = log.decode("utf-8", errors="replace")
        assert "POST /predict" in text, name  # the logs were on, at DEBUG, while the uploads went through
        assert audited_run.marker.encode() not in log, name
        for data, _ in audited_run.images.values():
            head = data[:24]
            assert head not in log and head.hex() not in text, name
            assert base64.b64encode(head).decode() not in text and repr(head)[2:-1] not in text, name


def test_no_telemetry_is_written(audited_run: AuditedRun) -> None:
    """ONNX Runtime >= 1.29 on Linux starts Microsoft 1DS telemetry by default (a device id in TMPDIR and
    upload attempts) unless ORT_DISABLE_TELEMETRY=1 is set before it loads."""
    assert not audited_run.tmp_files, (
        f"{[f.name for f in audited_run.tmp_files]} written to TMPDIR: set ORT_DISABLE_TELEMETRY=1 "
        "before onnxruntime is imported"
    )

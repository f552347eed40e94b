"""The compose stack on a real Docker engine. Skipped where no engine answers, except in CI (CI=true),
where a missing engine fails the run: .ci/run installs and starts one."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from samples import fer, music
from services.common.paths import REPO
from services.launch import free_port

# Labels compose puts on everything it creates for a project.
PROJECT_LABEL = "com.docker.compose.project"
LOCAL_ENV = REPO / "deploy" / "docker" / "local.env"
WHEELS = REPO / "deploy" / "docker" / "wheels"
BASE_IMAGE_KEYS = ("MOODTUNES_PYTHON_IMAGE", "MOODTUNES_REDIS_IMAGE")


def _engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    return probe.returncode == 0


def _compose_command() -> list[str]:
    """Compose v2 (the docker CLI plugin) where it is installed, else v1 (Debian's docker-compose)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("a Docker engine answers but neither `docker compose` nor `docker-compose` is installed")


def _local_base_images() -> dict[str, str]:
    """deploy/docker/local.env's base images (`make docker-local`) that exist on this engine, for those
    the caller did not name: where they were made, no registry is reachable to pull the defaults."""
    found = {}
    for line in LOCAL_ENV.read_text().splitlines():
        key, sep, image = line.partition("=")
        if not sep or line.startswith("#") or key in os.environ:
            continue
        inspect = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=30)
        if inspect.returncode == 0:
            found[key] = image
    return found


@pytest.fixture(scope="session")
def compose_command() -> list[str]:
    if not _engine_answers():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no Docker engine answers `docker info` (.ci/run starts dockerd)")
        pytest.skip("no Docker engine answers `docker info`: deploy tests skipped")
    return _compose_command()


@dataclass
class Compose:
    """One compose project: a unique name, its gateway on a free loopback port, a data folder (or none:
    a fresh clone), more compose files and settings for the test's own additions."""

    command: list[str]
    data: Path | None = None
    files: tuple[Path, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)
    base_images: dict[str, str] = field(default_factory=_local_base_images)
    project: str = field(default_factory=lambda: f"mtdeploy{uuid.uuid4().hex[:10]}")
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        # The caller's own MOODTUNES_* settings (a data folder, a model folder) would change the stack
        # under test; only the base images pass through.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOODTUNES_") or k in BASE_IMAGE_KEYS}
        env |= self.base_images | {"MOODTUNES_HOST": "127.0.0.1", "MOODTUNES_GATEWAY_PORT": str(self.port)}
        if self.data is not None:
            env["MOODTUNES_DATA_HOST"] = str(self.data)
        return env | self.settings

    def __call__(
        self,
        *args: str,
        training: bool = False,
        timeout: float = 120,
        check: bool = True,
        stderr: bool = False,
    ) -> str:
        """`compose ARGS`, its stdout (and then its stderr, where a container's log lines go, with
        stderr=True); training=True: with the training job's profile (which `up` would start)."""
        files = [arg for path in (REPO / "docker-compose.yml", *self.files) for arg in ("--file", str(path))]
        profile = ["--profile", "training"] if training else []
        cmd = [*self.command, "--project-name", self.project, *files, *profile, *args]
        done = subprocess.run(
            cmd, cwd=REPO, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done.stdout + done.stderr if stderr else done.stdout

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes still labelled with this project."""
        found = {}
        for kind in ("container", "network", "volume"):
            listing = ["docker", kind, "ls", "--quiet", "--filter", f"label={PROJECT_LABEL}={self.project}"]
            if kind == "container":
                listing.insert(3, "--all")
            found[kind] = subprocess.run(
                listing, capture_output=True, text=True, timeout=60, check=True
            ).stdout.split()
        return found


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Polls `check` until it returns something truthy (connection errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


@pytest.fixture(scope="session")
def images(compose_command: list[str]) -> list[str]:
    """Every image of docker-compose.yml built once per session; the compose command to use."""
    # The images install from deploy/docker/wheels when it holds wheels: brought up to date with the
    # requirements by the interpreter running the tests (nothing is fetched when they are). Without
    # it, the training image would fetch PyPI's CUDA build of torch (gigabytes).
    subprocess.run(
        [WHEELS.parent / "wheels.sh"], env=os.environ | {"PYTHON": sys.executable}, timeout=900, check=True
    )
    start = time.monotonic()
    # v1 builds one image after another unless told, with the legacy builder, whose failed steps leave
    # containers unless --force-rm; v2 builds in parallel with BuildKit.
    v1 = ["--parallel", "--force-rm"] if compose_command == ["docker-compose"] else []
    Compose(compose_command)("build", *v1, training=True, timeout=1500)
    print(f"deploy: images built in {time.monotonic() - start:.0f} s")
    return compose_command


@contextlib.contextmanager
def running(compose: Compose) -> Iterator[Compose]:
    """`up`, then `down` with its volumes, whatever happened."""
    try:
        compose("up", "--detach", timeout=300)
        yield compose
    finally:
        down = ("down", "--volumes", "--remove-orphans", "--timeout", "10")
        compose(*down, training=True, timeout=180, check=False)


def readable(root: Path) -> Path:
    """Mounted folders must be readable by the containers' non-root user."""
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def _data_folder(root: Path) -> Path:
    """What MOODTUNES_DATA_HOST mounts: a small catalog (music/) and FER2013-shaped faces (fer2013/)."""
    catalog, labelled = music.write(root / "music", n=600)
    labelled.rename(catalog.with_name("mood_labelled.parquet"))
    (root / "fer2013").mkdir()
    fer.write_npz(root / "fer2013" / "fer2013.npz")
    return readable(root)


@pytest.fixture(scope="module")
def stack(images: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    """The stack with a data folder mounted, started for one module."""
    with running(Compose(images, _data_folder(tmp_path_factory.mktemp("deploy-data")))) as compose:
        yield compose

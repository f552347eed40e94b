"""docker-compose.yml and the Dockerfiles agree with `python -m services` (services/__main__.py), name
only paths that exist, publish only the gateway, create nothing on the host by default, run as non-root
and install their own requirements under the lock; `python -m services` runs. (tests/deploy/ builds and
runs the images on a real Docker engine.)"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from samples.music import recommender_env
from services.common.paths import REPO
from services.launch import METRICS_PORTS, SERVICES, metrics_url, service_args
from tests.procs import python_m_services

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
DEV_OVERRIDE = yaml.safe_load((REPO / "docker-compose.dev.yml").read_text())
APP_SERVICES = sorted(SERVICES)
INTERNAL = sorted(set(SERVICES) - {"gateway"})
# The services' images are targets of one Dockerfile; the training image has its own.
DOCKERFILES = {name: REPO / "services" / "Dockerfile" for name in SERVICES} | {
    "training": REPO / "training" / "Dockerfile"
}
PIP_INSTALL = "deploy/docker/pip-install.sh"


def _defaults(value: str) -> str:
    """A compose value with every `${VAR:-default}` read as its default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def _volume(spec: str) -> tuple[str, str]:
    """(source, mode) of a volume with its defaults; the source is a named volume or a host path."""
    source, _container, *mode = _defaults(spec).split(":")
    return source, (mode or ["rw"])[0]


def _steps(path: Path) -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines]


def _stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Each stage's steps, its FROM first, by its name (`FROM image AS name`) or else its index."""
    stages: dict[str, list[tuple[str, str]]] = {}
    for instr, args in _steps(path):
        if instr == "FROM":
            named = args.split()[1:]
            current = stages[named[-1] if named else str(len(stages))] = []
        if stages:
            current.append((instr, args))
    return stages


def _dockerfile(name: str) -> list[tuple[str, str]]:
    """The steps that make `name`'s image: with a compose build target, that stage's and those of the
    stages it starts from or copies from (theirs first); without one, the whole file."""
    target = COMPOSE["services"][name]["build"].get("target")
    if target is None:
        return _steps(DOCKERFILES[name])
    stages = _stages(DOCKERFILES[name])

    def made_of(stage: str) -> list[tuple[str, str]]:
        own = stages[stage]
        copied = [args.split()[0].removeprefix("--from=") for instr, args in own if instr == "COPY"]
        used = dict.fromkeys([own[0][1].split()[0], *copied])  # a stage copied from twice is built once
        return [step for other in used if other in stages for step in made_of(other)] + own

    return made_of(target)


def test_compose_runs_every_service_and_redis() -> None:
    assert set(COMPOSE["services"]) == {*SERVICES, "redis", "training"}
    assert _defaults(COMPOSE["services"]["redis"]["image"]) == "redis:7-alpine"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_command_and_port_match_services_table(name: str) -> None:
    port = SERVICES[name][1]
    svc = COMPOSE["services"][name]
    assert svc["command"] == ["python", "-m", "services", *service_args(name, "0.0.0.0")]
    assert f":{port}/" in " ".join(svc["healthcheck"]["test"])


def test_only_the_gateway_is_published_on_its_configurable_port() -> None:
    published = {name for name, svc in COMPOSE["services"].items() if "ports" in svc}
    assert published == {"gateway"}
    (spec,) = COMPOSE["services"]["gateway"]["ports"]
    assert spec.endswith(f":{SERVICES['gateway'][1]}") and "${MOODTUNES_GATEWAY_PORT:-8000}" in spec


def test_no_metrics_port_is_published() -> None:
    """Metrics answer on each service's metrics port (services/launch.py), for the operator's scraper."""
    for compose in (COMPOSE, DEV_OVERRIDE):
        for name, svc in compose["services"].items():
            for spec in svc.get("ports", []):
                assert int(_defaults(spec).rsplit(":", 1)[1]) not in METRICS_PORTS.values(), name


@pytest.mark.parametrize("name", INTERNAL)
def test_the_developer_override_exposes_internal_services_on_loopback_only(name: str) -> None:
    port = SERVICES[name][1]
    assert DEV_OVERRIDE["services"][name]["ports"] == [f"127.0.0.1:{port}:{port}"]


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_base_image_is_a_build_argument_with_the_same_default_as_compose(name: str) -> None:
    steps = _steps(DOCKERFILES[name])
    assert steps[0] == ("ARG", "PYTHON_IMAGE=python:3.11-slim")
    images = {args.split()[0] for instr, args in steps if instr == "FROM"} - set(_stages(DOCKERFILES[name]))
    assert "${PYTHON_IMAGE}" in images and images <= {"${PYTHON_IMAGE}", "scratch"}
    args = COMPOSE["services"][name]["build"]["args"]
    assert _defaults(args["PYTHON_IMAGE"]) == "python:3.11-slim"


@pytest.mark.parametrize("name", [*APP_SERVICES, "redis"])
def test_every_long_running_service_has_a_healthcheck(name: str) -> None:
    test = COMPOSE["services"][name]["healthcheck"]["test"]
    assert test[0] == "CMD" and len(test) > 1


def test_gateway_waits_for_healthy_dependencies_and_points_at_them() -> None:
    gw = COMPOSE["services"]["gateway"]
    healthy = {"condition": "service_healthy"}
    assert gw["depends_on"] == {n: healthy for n in ("redis", "emotion", "recommender")}
    env = gw["environment"]
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    assert env["GATEWAY_EMOTION_URL"] == f"http://emotion:{SERVICES['emotion'][1]}"
    assert env["GATEWAY_RECOMMENDER_URL"] == f"http://recommender:{SERVICES['recommender'][1]}"


def test_recommender_reads_the_mounted_data_through_its_settings() -> None:
    """Through MOODTUNES_DATA, not explicit paths: with no catalog in the data the first run takes over
    (a configured path that does not exist is reported instead)."""
    rec = COMPOSE["services"]["recommender"]
    assert rec["environment"]["MOODTUNES_DATA"] == "/data"
    assert not {k for k in rec["environment"] if k.startswith("RECOMMENDER_") and k.endswith("_PATH")}
    assert any(v.endswith(":/data:ro") for v in rec["volumes"])


@pytest.mark.parametrize("name", ["recommender", "training"])
def test_without_a_data_folder_nothing_is_created_on_the_host(name: str) -> None:
    """Docker creates a missing bind-mount source (../shared/data on a fresh clone) as an empty root-owned
    folder; unset, the data mount is an empty named volume instead."""
    (data,) = [v for v in COMPOSE["services"][name]["volumes"] if v.endswith(":/data:ro")]
    assert data.startswith("${MOODTUNES_DATA_HOST:-")
    assert _volume(data)[0] in COMPOSE["volumes"]


def test_the_first_run_catalog_download_is_kept_in_a_volume() -> None:
    rec = COMPOSE["services"]["recommender"]
    cache = rec["environment"]["MOODTUNES_CACHE_DIR"]
    (mount,) = [v for v in rec["volumes"] if _defaults(v).split(":")[1] == cache]
    assert _volume(mount)[0] in COMPOSE["volumes"]


def test_training_writes_the_model_the_emotion_service_serves_not_the_repos() -> None:
    tr, emo = COMPOSE["services"]["training"], COMPOSE["services"]["emotion"]
    assert tr["profiles"] == ["training"]
    assert any(v.endswith(":/data:ro") for v in tr["volumes"])
    model_dir = "/app/services/emotion/model"
    (mount,) = [v for v in emo["volumes"] if _defaults(v).split(":")[1] == model_dir]
    assert mount in tr["volumes"]
    assert _volume(mount)[0] in COMPOSE["volumes"]  # a volume by default, never ./services/emotion/model
    assert tr["environment"]["TRAINING_MODEL_DIR"] == model_dir


def test_the_training_job_and_image_run_the_one_pipeline() -> None:
    """Compose and the training image call what `make train` calls, with a config that exists."""
    pipeline = ["python", "-m", "training.emotion.pipeline"]
    tr = COMPOSE["services"]["training"]
    assert tr["entrypoint"] == pipeline
    config = tr["command"][tr["command"].index("--config") + 1]
    assert (REPO / "training" / "emotion" / "configs" / f"{config}.toml").is_file(), config
    image = {
        instr: json.loads(args) for instr, args in _dockerfile("training") if instr in ("ENTRYPOINT", "CMD")
    }
    assert image == {"ENTRYPOINT": pipeline, "CMD": tr["command"]}
    make = (REPO / "Makefile").read_text()
    # Every make target that trains runs the pipeline through $(PIPELINE), `make train` with the config.
    assert make.count("-m training.emotion.pipeline") == 1
    assert "\t$(PIPELINE) --config $(CONFIG) $(TRAIN_ARGS)\n" in make


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_build_context_and_dockerfile_exist(name: str) -> None:
    build = COMPOSE["services"][name]["build"]
    assert (REPO / build["context"]).resolve() == REPO
    assert (REPO / build["dockerfile"]).resolve() == DOCKERFILES[name]
    assert DOCKERFILES[name].is_file()
    if name in SERVICES:
        assert build["target"] == name and name in _stages(DOCKERFILES[name])


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_compose_volumes_name_declared_volumes_or_existing_paths(name: str) -> None:
    for volume in COMPOSE["services"][name].get("volumes", []):
        source, mode = _volume(volume)
        if "/" not in source:
            assert source in COMPOSE["volumes"], volume
            continue
        path = (REPO / source).resolve()
        # Read-only inputs must exist; writable outputs (runs/, reports/) are created on first use.
        assert path.exists() if mode == "ro" else path.parent.exists(), volume


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_runs_as_non_root(name: str) -> None:
    users = [args for instr, args in _dockerfile(name) if instr == "USER"]
    assert users, f"{name}: no USER"
    assert users[-1].split(":")[0] not in ("root", "0")


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_copies_only_existing_paths(name: str) -> None:
    ignored = {ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()}
    for instr, args in _dockerfile(name):
        if instr != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = args.split()
        for src in sources:
            assert (REPO / src).exists(), f"{name}: COPY {src} does not exist"
            assert src.split("/")[0] not in ignored, f"{name}: COPY {src} is excluded by .dockerignore"


# What each image runs: its service's app (through the launcher) or the training pipeline.
ENTRY_MODULES = {name: ["services.launch", SERVICES[name][0].partition(":")[0]] for name in SERVICES} | {
    "training": ["training.emotion.pipeline"]
}
IMPORTED = (
    "import importlib, json, sys\n"
    "for name in sys.argv[1:]: importlib.import_module(name)\n"
    "print(json.dumps([getattr(m, '__file__', None) for m in list(sys.modules.values())]))"
)


def _repository_files_imported(modules: list[str]) -> set[Path]:
    """The repository's own files that importing `modules` loads (in a fresh interpreter)."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED, *modules], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = {Path(f) for f in json.loads(done.stdout.splitlines()[-1]) if f}
    return {
        f.relative_to(REPO)
        for f in files
        if f.is_relative_to(REPO) and not f.relative_to(REPO).parts[0].startswith(".venv")
    }


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_the_image_holds_every_repository_module_it_imports(name: str) -> None:
    """A module left out of the image fails only when the image runs (the training job once did, on
    bench.report): every repository file its entry point imports must be one the image copies."""
    copied = [
        Path(src)
        for instr, args in _dockerfile(name)
        if instr == "COPY" and not args.startswith("--from")
        for src in args.split()[:-1]
    ]
    missing = {
        str(f)
        for f in _repository_files_imported(ENTRY_MODULES[name])
        if not any(f == src or src in f.parents for src in copied)
    }
    assert not missing, f"{name}: imported, not in the image: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_installs_its_own_requirements_through_the_locked_installer(name: str) -> None:
    runs = " ".join(args for instr, args in _dockerfile(name) if instr == "RUN")
    assert "pip install" not in runs, f"{name}: install through {PIP_INSTALL} (it applies the lock)"
    installed = re.findall(rf"{PIP_INSTALL} (?:--[a-z-]+ )*-r (\S+)", runs)
    expected = [f"requirements/{name}.txt"] + (["requirements/emotion-weights.txt"] * (name == "emotion"))
    assert installed == expected
    assert "-c requirements/constraints.txt" in (REPO / PIP_INSTALL).read_text()


@pytest.mark.parametrize("name", APP_SERVICES)
def test_dockerfile_serves_the_services_table_command(name: str) -> None:
    port = SERVICES[name][1]
    steps = _dockerfile(name)
    assert ("EXPOSE", str(port)) in steps
    cmd = [args for instr, args in steps if instr == "CMD"][-1]
    assert yaml.safe_load(cmd) == ["python", "-m", "services", *service_args(name, "0.0.0.0")]
    copied = [args.split()[0] for instr, args in steps if instr == "COPY"]
    assert f"services/{name}" in copied
    assert not {f"services/{other}" for other in SERVICES if other != name} & set(copied)


@contextlib.contextmanager
def _python_m_services(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, int]]]:
    """`python -m services` on free ports with a synthetic catalog, once it says it is running; the
    ports named are the services' own and their metrics listeners'."""
    with python_m_services(recommender_env(tmp_path)) as running:
        yield running.proc, running.port_of | {f"{n} metrics": p for n, p in running.metrics_port_of.items()}


def _any_up(port_of: dict[str, int]) -> bool:
    for port in port_of.values():
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return True
        except httpx.ConnectError:
            pass
        except httpx.TransportError:  # accepted, then reset: a service on its way down is still up
            return True
    return False


def test_python_m_services_runs_all_three_and_stops_on_sigint(tmp_path: Path) -> None:
    with _python_m_services(tmp_path) as (proc, port_of):
        for name in SERVICES:
            base = f"http://127.0.0.1:{port_of[name]}"
            assert httpx.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
            # Metrics answer on the service's metrics port alone.
            assert httpx.get(f"{base}/metrics", timeout=5).status_code == 404
            metrics = httpx.get(metrics_url(port_of[f"{name} metrics"]), timeout=5).text
            assert f'service="{name}"' in metrics
        # The gateway was pointed at the recommender started beside it (which may still be loading).
        deadline = time.monotonic() + 60
        url = f"http://127.0.0.1:{port_of['gateway']}/recommend?emotion=happy&limit=5"
        while (resp := httpx.get(url, timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, f"gateway never recommended: {resp.status_code} {resp.text}"
            time.sleep(0.5)
        assert len(resp.json()["tracks"]) == 5
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert not _any_up(port_of)


def test_python_m_services_stops_everything_when_one_service_dies(tmp_path: Path) -> None:
    with _python_m_services(tmp_path) as (proc, port_of):
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == len(SERVICES)
        recommender = next(
            int(pid)
            for pid in children
            if "\0".join(service_args("recommender", "127.0.0.1", port_of["recommender"]))
            in Path(f"/proc/{pid}/cmdline").read_text()
        )
        os.kill(recommender, signal.SIGKILL)
        assert proc.wait(30) != 0
        assert not _any_up(port_of)


def test_services_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    with _python_m_services(tmp_path) as (proc, port_of):
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 30
        while _any_up(port_of):
            assert time.monotonic() < deadline, "services still up after the supervisor was killed"
            time.sleep(0.5)


@pytest.mark.parametrize("name", ["emotion", "training"])
def test_images_running_onnx_runtime_turn_its_telemetry_off(name: str) -> None:
    env = " ".join(args for instr, args in _dockerfile(name) if instr == "ENV")
    assert "ORT_DISABLE_TELEMETRY=1" in env

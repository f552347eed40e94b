"""Starting the services as processes, from one table. `python -m services` (make run), the tests and
the benchmarks all start them here, so that each runs what docker-compose runs (tests/test_compose.py).

`service(name)` runs one on a free loopback port until ready; `stack()` runs all three wired together
(the gateway pointed at the other two), as `python -m services` does on fixed ports.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.paths import REPO

# The one table of what runs where: each service is an app factory, `create_app(settings)`, that the
# server calls at start-up (load_app), so importing a service reads no settings. docker-compose.yml and
# the Dockerfiles must run the same commands (service_args; tests/test_compose.py).
SERVICES: dict[str, tuple[str, int]] = {
    "emotion": ("services.emotion.app:create_app", 8001),
    "recommender": ("services.recommender.app:create_app", 8002),
    "gateway": ("services.gateway.app:create_app", 8000),
}
# Each service's Prometheus metrics answer on a port of their own (prometheus_client's listener in the
# worker process), for the operator's scraper alone: compose does not publish it and the Ingress does not
# route it (deploy/k8s scrapes it), so the public port has no /metrics.
METRICS_PORTS: dict[str, int] = {"emotion": 9001, "recommender": 9002, "gateway": 9000}
# A busy machine can take minutes to load the models and the catalog.
START_TIMEOUT_S = float(os.environ.get("MOODTUNES_START_TIMEOUT_S", "300"))
STOP_TIMEOUT_S = 15.0
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
LOOPBACK = "127.0.0.1"


# Names the service for load_app in granian's worker process, and where its metrics listen ("HOST PORT").
SERVE_ENV = "MOODTUNES_SERVE"
METRICS_ENV = "MOODTUNES_SERVE_METRICS"


def service_args(name: str, host: str, port: int | None = None, metrics_port: int | None = None) -> list[str]:
    """Arguments after `python -m services` that run one service, as compose and the Dockerfiles do (the
    metrics port is named only where it is not the service's default)."""
    args = [name, "--host", host, "--port", str(port or SERVICES[name][1])]
    return args + (["--metrics-port", str(metrics_port)] if metrics_port is not None else [])


def metrics_url(port: int, host: str = LOOPBACK) -> str:
    """Where a service started with this metrics port answers its scraper."""
    return f"http://{host}:{port}/metrics"


def load_app() -> object:
    """Granian's factory, called in its worker process: the ASGI app of the service named in SERVE_ENV,
    with its metrics listener started beside it in the same process (the registry the app counts in)."""
    from prometheus_client import start_http_server

    if sys.platform == "linux":
        _die_with_parent()  # the worker must not outlive the granian process that spawned it (kill -9)
    module, _, factory = SERVICES[os.environ[SERVE_ENV]][0].partition(":")
    host, _, port = os.environ[METRICS_ENV].rpartition(" ")
    start_http_server(int(port), addr=host)  # a daemon thread; it ends with the worker
    return getattr(importlib.import_module(module), factory)()


def serve(name: str, host: str, port: int, log_level: str = "info", metrics_port: int | None = None) -> None:
    """Runs one service in the foreground until SIGINT or SIGTERM: on granian (a Rust HTTP server whose
    HTTP/1 parser is hyper's), because it enforces what uvicorn does not: a size limit for the request
    line and headers (431) and a deadline for them that also closes idle connections.
    services/common/limits.py adds the body deadline and load shedding. log_level: granian's own lines."""
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    from services.common.limits import HttpSettings
    from services.common.logs import LogSettings, configure_logging

    # granian's own lines go through the service's log handler (text or JSON, <NAME>_LOG_*), as its
    # app's lines do.
    # _env_prefix: pydantic-settings' init argument, which its mypy plugin does not declare.
    configure_logging(name, LogSettings(_env_prefix=f"{name.upper()}_"))  # type: ignore[call-arg]
    limits = HttpSettings()
    os.environ[SERVE_ENV] = name
    os.environ[METRICS_ENV] = f"{host} {metrics_port or METRICS_PORTS[name]}"
    Server(
        "services.launch:load_app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        # HTTP/1 only: HTTP/2 over cleartext would bring its own, far larger, header limit.
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=limits.http1(),
        # backlog and backpressure stay at granian's defaults (1024 each), far above HttpLimits' cap:
        # past its backpressure granian holds requests back unanswered, where HttpLimits answers 503
        # with Retry-After at once (bench/overload.py times both from the client's side).
        log_level=LogLevels(log_level),
        log_dictconfig={"loggers": {"_granian": {"propagate": True}, "granian.access": {"propagate": True}}},
    ).serve()


def worker_pid(pid: int) -> int:
    """The process that serves requests: granian's worker, the child of the process `spawn` started
    (that one itself when it has none yet)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pid
    return int(children[0]) if children else pid


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def backends_env(emotion: str, recommender: str) -> dict[str, str]:
    """What the gateway needs to find the other two."""
    return {"GATEWAY_EMOTION_URL": emotion, "GATEWAY_RECOMMENDER_URL": recommender}


def base_env() -> dict[str, str]:
    # ONNX Runtime on Linux otherwise starts Microsoft telemetry (a device id file, upload attempts).
    return {"ORT_DISABLE_TELEMETRY": "1"}


def _die_with_parent() -> None:
    """Linux: the kernel sends the service SIGTERM if its parent dies without stopping it (kill -9)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    name: str,
    port: int,
    env: Mapping[str, str],
    host: str = LOOPBACK,
    log: Path | None = None,
    own_group: bool = False,
    extra: tuple[str, ...] = (),
    metrics_port: int | None = None,
) -> subprocess.Popen[bytes]:
    """Starts one service (`python -m services NAME`); `env` is its whole environment. own_group: a
    terminal's Ctrl-C reaches only the caller, which then stops the service itself. log: a file for its
    output. extra: more arguments (QUIET). metrics_port: its metrics listener's (default METRICS_PORTS)."""
    out = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "services", *service_args(name, host, port, metrics_port), *extra],
            cwd=REPO,
            env=dict(env),
            stdout=out,
            stderr=None if out is None else subprocess.STDOUT,
            process_group=0 if own_group else None,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    finally:
        if out is not None:
            out.close()  # the child has its own copy


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when GET url is a 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(
    url: str, timeout: float = START_TIMEOUT_S, proc: subprocess.Popen | None = None, probe: str = "/readyz"
) -> None:
    """Waits until `url + probe` answers 200; fails early if `proc` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        if answers(f"{url}{probe}"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{url}{probe} not ready after {timeout}s")


def stop(procs: list[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM to all, then SIGKILL to any still running after `timeout`."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@dataclass(frozen=True)
class Running:
    url: str
    pid: int
    metrics: str  # the metrics listener's URL


@contextlib.contextmanager
def _started(
    names: list[str],
    ports: Mapping[str, int],
    env: Mapping[str, Mapping[str, str]],
    timeout: float,
    logs: Mapping[str, Path],
    probe: str = "/readyz",
    metrics: Mapping[str, int] | None = None,
) -> Iterator[dict[str, Running]]:
    """Starts the services together (each loads its models while the others load theirs), waits for
    each to answer `probe`, and stops them all on exit. metrics: metrics ports (free ones unless given)."""
    metrics = metrics or {}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    metrics_ports = {name: metrics.get(name) or free_port() for name in names}
    try:
        for name in names:
            full_env = {**os.environ, **base_env(), **env.get(name, {})}
            # Warnings only: a test's or a bench's output is not the place for every request.
            procs[name] = spawn(
                name, ports[name], full_env, log=logs.get(name), extra=QUIET, metrics_port=metrics_ports[name]
            )
        urls = {name: f"http://{LOOPBACK}:{ports[name]}" for name in procs}
        for name, proc in procs.items():
            wait_ready(urls[name], timeout, proc, probe)
        yield {
            name: Running(urls[name], worker_pid(p.pid), metrics_url(metrics_ports[name]))
            for name, p in procs.items()
        }
    finally:
        stop(list(procs.values()))


QUIET = ("--log-level", "warning")


@contextlib.contextmanager
def service(
    name: str,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT_S,
    log: Path | None = None,
    probe: str = "/readyz",
    metrics_port: int | None = None,
) -> Iterator[str]:
    """One service on a loopback port (a free one unless given), its environment this process's plus
    `env`, until `probe` answers 200 (/healthz for a service expected to start unready); stopped on
    exit. Yields its base URL. log: a file for its output. metrics_port: where its metrics answer
    (metrics_url; a free port unless given)."""
    ports = {name: port or free_port()}
    logs = {name: log} if log is not None else {}
    metrics = {name: metrics_port} if metrics_port else {}
    with _started([name], ports, {name: env or {}}, timeout, logs, probe, metrics) as running:
        yield running[name].url


@dataclass(frozen=True)
class Stack:
    emotion: str
    recommender: str
    gateway: str
    pids: dict[str, int]
    metrics: dict[str, str]  # each service's metrics URL


@contextlib.contextmanager
def stack(
    env: Mapping[str, Mapping[str, str]] | None = None,
    ports: Mapping[str, int] | None = None,
    timeout: float = START_TIMEOUT_S,
) -> Iterator[Stack]:
    """The three services wired together on loopback ports (free ones unless given), until all are
    ready; env: extra variables per service name (the gateway's backends are set here; its own env
    may override them)."""
    env, ports = env or {}, ports or {}
    port_of = {name: ports.get(name) or free_port() for name in SERVICES}
    url = {name: f"http://{LOOPBACK}:{port}" for name, port in port_of.items()}
    full_env = {name: dict(env.get(name, {})) for name in SERVICES}
    full_env["gateway"] = {**backends_env(url["emotion"], url["recommender"]), **full_env["gateway"]}
    with _started(list(SERVICES), port_of, full_env, timeout, {}) as running:
        yield Stack(
            emotion=url["emotion"],
            recommender=url["recommender"],
            gateway=url["gateway"],
            pids={name: r.pid for name, r in running.items()},
            metrics={name: r.metrics for name, r in running.items()},
        )

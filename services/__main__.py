"""`python -m services`: runs the whole system locally (emotion, recommender, gateway) and supervises it.

Ports, host and start-up patience come from the environment (MOODTUNES_HOST, MOODTUNES_<NAME>_PORT,
MOODTUNES_START_TIMEOUT_S, default 300 s). Ctrl-C or SIGTERM stops
every service; if one service dies, the others are stopped too. REDIS_URL passes through when set.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from services.common.paths import REPO

# The one table of what runs where: each service is an app factory, `create_app(settings)`, that uvicorn
# calls at start-up (--factory), so importing a service reads no settings. docker-compose.yml and the
# Dockerfiles must run the same commands (tests/test_compose.py).
SERVICES: dict[str, tuple[str, int]] = {
    "emotion": ("services.emotion.app:create_app", 8001),
    "recommender": ("services.recommender.app:create_app", 8002),
    "gateway": ("services.gateway.app:create_app", 8000),
}

STOP_TIMEOUT_S = 15.0
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
# A busy machine can take minutes to load the models and the catalog.
START_TIMEOUT_S = float(os.environ.get("MOODTUNES_START_TIMEOUT_S", "300"))


def uvicorn_args(name: str, host: str, port: int | None = None) -> list[str]:
    """Arguments after `uvicorn` for one service, as compose runs them."""
    app, default_port = SERVICES[name]
    return ["--factory", app, "--host", host, "--port", str(port or default_port)]


def ports(env: dict[str, str]) -> dict[str, int]:
    return {
        name: int(env.get(f"MOODTUNES_{name.upper()}_PORT", default))
        for name, (_, default) in SERVICES.items()
    }


def child_env(env: dict[str, str], host: str, port_of: dict[str, int]) -> dict[str, str]:
    backend_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return {
        "GATEWAY_EMOTION_URL": f"http://{backend_host}:{port_of['emotion']}",
        "GATEWAY_RECOMMENDER_URL": f"http://{backend_host}:{port_of['recommender']}",
        # ONNX Runtime on Linux otherwise starts Microsoft telemetry (a device id file, upload attempts).
        "ORT_DISABLE_TELEMETRY": "1",
        **env,
    }


def _die_with_parent() -> None:
    """Linux: the kernel sends the service SIGTERM if the supervisor dies without stopping it (kill -9)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1.0) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Supervisor:
    def __init__(self, env: dict[str, str]) -> None:
        self.host = env.get("MOODTUNES_HOST", "127.0.0.1")
        self.port_of = ports(env)
        self.env = child_env(env, self.host, self.port_of)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def start(self) -> None:
        for name in SERVICES:
            # Own process group: a terminal's Ctrl-C reaches only us, and we stop the children once, cleanly.
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", *uvicorn_args(name, self.host, self.port_of[name])],
                cwd=REPO,
                env=self.env,
                process_group=0,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def dead(self) -> str | None:
        return next((name for name, p in self.procs.items() if p.poll() is not None), None)

    def wait_healthy(self) -> bool:
        local = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        pending = set(SERVICES)
        deadline = time.monotonic() + START_TIMEOUT_S
        while pending and time.monotonic() < deadline and not self.stopping and self.dead() is None:
            pending = {n for n in pending if not _healthy(f"http://{local}:{self.port_of[n]}")}
            time.sleep(0.2)
        return not pending

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True


def main() -> int:
    sup = Supervisor(dict(os.environ))
    signal.signal(signal.SIGINT, sup.on_signal)
    signal.signal(signal.SIGTERM, sup.on_signal)
    sup.start()
    code = 0
    try:
        if sup.wait_healthy():
            print(f"moodtunes is running at http://localhost:{sup.port_of['gateway']}", flush=True)
        elif not sup.stopping and sup.dead() is None:
            print("moodtunes: services did not become healthy in time", file=sys.stderr, flush=True)
            code = 1
        while not sup.stopping and code == 0:
            if (name := sup.dead()) is not None:
                print(
                    f"moodtunes: {name} exited with {sup.procs[name].returncode}; stopping",
                    file=sys.stderr,
                    flush=True,
                )
                code = 1
                break
            time.sleep(0.2)
    finally:
        sup.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())

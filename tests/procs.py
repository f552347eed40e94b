"""`python -m services` as a test runs it (the supervisor under test); single services and stacks are
started by services/launch.py, local stand-ins come from samples/servers.py."""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from services.common.paths import REPO
from services.launch import SERVICES, free_port


@dataclass
class Running:
    proc: subprocess.Popen[str]
    port_of: dict[str, int]
    metrics_port_of: dict[str, int]
    terminal: list[str]  # what it has printed so far (stdout and stderr), line by line


@contextlib.contextmanager
def python_m_services(env: dict[str, str], timeout: float = 300.0) -> Iterator[Running]:
    """`python -m services` (what `make run` runs) on free ports, with `env` over this process's
    environment (REDIS_URL dropped), once it says it is running; stopped with SIGTERM afterwards."""
    port_of = {name: free_port() for name in SERVICES}
    metrics_port_of = {name: free_port() for name in SERVICES}
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {
        "MOODTUNES_HOST": "127.0.0.1",
        **{f"MOODTUNES_{n.upper()}_PORT": str(p) for n, p in port_of.items()},
        **{f"MOODTUNES_{n.upper()}_METRICS_PORT": str(p) for n, p in metrics_port_of.items()},
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services"],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    try:
        # The output (the startup line among the services' logs) is drained by a thread, so a full pipe
        # never blocks the services.
        lines: queue.Queue[str] = queue.Queue()
        terminal: list[str] = []

        def drain() -> None:
            for line in proc.stdout or ():
                terminal.append(line.strip())
                lines.put(line.strip())

        threading.Thread(target=drain, daemon=True).start()
        wanted = f"moodtunes is running at http://localhost:{port_of['gateway']}"
        deadline = time.monotonic() + timeout
        while lines.get(timeout=max(0.1, deadline - time.monotonic())) != wanted:
            assert time.monotonic() < deadline, (
                f"no startup line within {timeout:g} s; last: {terminal[-20:]}"
            )
        yield Running(proc, port_of, metrics_port_of, terminal)
    finally:
        if proc.poll() is None:
            # SIGTERM: the supervisor stops its services (they would outlive a SIGKILL).
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

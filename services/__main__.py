"""`python -m services`: runs the whole system locally (emotion, recommender, gateway) and supervises it;
`python -m services NAME [--host H] [--port P]`: runs one service in the foreground, as its container does
(services/launch.py's serve: on granian, with the HTTP limits of MOODTUNES_HTTP_*).

Ports, host and start-up patience come from the environment (MOODTUNES_HOST, MOODTUNES_<NAME>_PORT,
MOODTUNES_<NAME>_METRICS_PORT for the operator's scraper, MOODTUNES_START_TIMEOUT_S, default 300 s).
Ctrl-C or SIGTERM stops every service; if one service dies, the others are stopped too.
REDIS_URL passes through when set.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

from services.launch import (
    METRICS_PORTS,
    SERVICES,
    START_TIMEOUT_S,
    answers,
    backends_env,
    base_env,
    serve,
    spawn,
    stop,
)

__all__ = ["SERVICES", "main"]


def ports(env: dict[str, str]) -> dict[str, int]:
    return {
        name: int(env.get(f"MOODTUNES_{name.upper()}_PORT", default))
        for name, (_, default) in SERVICES.items()
    }


def metrics_ports(env: dict[str, str]) -> dict[str, int]:
    return {
        name: int(env.get(f"MOODTUNES_{name.upper()}_METRICS_PORT", default))
        for name, default in METRICS_PORTS.items()
    }


def child_env(env: dict[str, str], host: str, port_of: dict[str, int]) -> dict[str, str]:
    backend_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    backends = backends_env(
        f"http://{backend_host}:{port_of['emotion']}", f"http://{backend_host}:{port_of['recommender']}"
    )
    return {**backends, **base_env(), **env}


def page_url(env: Mapping[str, str], port: int) -> str:
    """Where to open the page: with Save to Spotify configured, the loopback address, since Spotify
    sends listeners back only to 127.0.0.1, never to `localhost` (docs/spotify.md)."""
    host = "127.0.0.1" if env.get("MOODTUNES_SPOTIFY_CLIENT_ID", "").strip() else "localhost"
    return f"http://{host}:{port}"


class Supervisor:
    def __init__(self, env: dict[str, str]) -> None:
        self.host = env.get("MOODTUNES_HOST", "127.0.0.1")
        self.port_of = ports(env)
        self.metrics_port_of = metrics_ports(env)
        self.env = child_env(env, self.host, self.port_of)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def start(self) -> None:
        for name in SERVICES:
            # Own process group: a terminal's Ctrl-C reaches only us, and we stop the children once, cleanly.
            self.procs[name] = spawn(
                name,
                self.port_of[name],
                self.env,
                self.host,
                own_group=True,
                metrics_port=self.metrics_port_of[name],
            )

    def dead(self) -> str | None:
        return next((name for name, p in self.procs.items() if p.poll() is not None), None)

    def wait_healthy(self) -> bool:
        local = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        pending = set(SERVICES)
        deadline = time.monotonic() + START_TIMEOUT_S
        while pending and time.monotonic() < deadline and not self.stopping and self.dead() is None:
            pending = {n for n in pending if not answers(f"http://{local}:{self.port_of[n]}/healthz")}
            time.sleep(0.2)
        return not pending

    def stop(self) -> None:
        stop(list(self.procs.values()))

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
            print(f"moodtunes is running at {page_url(os.environ, sup.port_of['gateway'])}", flush=True)
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


def cli(argv: list[str]) -> int:
    if not argv:
        return main()
    parser = argparse.ArgumentParser(prog="python -m services", description="Runs one service.")
    parser.add_argument("name", choices=sorted(SERVICES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--metrics-port", type=int, help="the metrics listener's (default: METRICS_PORTS)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    serve(args.name, args.host, args.port or SERVICES[args.name][1], args.log_level, args.metrics_port)
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))

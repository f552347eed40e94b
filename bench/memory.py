"""Resident memory and CPU time of a running service, read from /proc (Linux)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from services.launch import SERVICES, service_args

PROC = Path("/proc")


def server_pid(app: str, port: int) -> int:
    """The process that runs `app` on `port`, as services/launch.py starts it (`python -m services NAME
    --host 127.0.0.1 --port PORT`): granian's worker, the child of the granian process with that command."""
    name = next(n for n, (a, _) in SERVICES.items() if a == app)
    wanted = "\0".join(["services", *service_args(name, "127.0.0.1", port)]) + "\0"
    matching: dict[int, int] = {}  # pid -> parent pid
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if wanted in (entry / "cmdline").read_text():
                    stat = (entry / "stat").read_text()
                    matching[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    workers = [pid for pid, parent in matching.items() if parent in matching]
    if not workers:
        raise LookupError(f"no process serves {app} on port {port}")
    return workers[0]


def memory_mb(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory in MiB."""
    fields = {}
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB
    return {"rss_mb": round(fields["VmRSS"], 1), "peak_rss_mb": round(fields["VmHWM"], 1)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used."""
    fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

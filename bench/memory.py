"""Resident memory of a running service, read from /proc (Linux)."""

from __future__ import annotations

import contextlib
from pathlib import Path

PROC = Path("/proc")


def uvicorn_pid(app: str, port: int) -> int:
    """The process serving `app` on `port`, as services/launch.py starts it (uvicorn <app> --host 127.0.0.1
    --port <port>)."""
    wanted = "\0".join([app, "--host", "127.0.0.1", "--port", str(port)]) + "\0"
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if wanted in (entry / "cmdline").read_text():
                    return int(entry.name)
    raise LookupError(f"no process serves {app} on port {port}")


def memory_mb(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory in MiB."""
    fields = {}
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB
    return {"rss_mb": round(fields["VmRSS"], 1), "peak_rss_mb": round(fields["VmHWM"], 1)}

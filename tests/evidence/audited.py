"""Runs a service under a Python audit hook that reports every file opened for writing, with every
logger at DEBUG, so tests/test_hygiene.py can check that uploads never reach the disk or the logs.

    python -m tests.evidence.audited services.emotion.app:create_app PORT
"""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
MARK = "AUDIT-WRITE"


def _hook(event: str, args: tuple[object, ...]) -> None:
    # "open" is raised by open(), os.open() and tempfile (O_TMPFILE): args are (path, mode, flags).
    if event == "open" and isinstance(args[2], int) and args[2] & WRITE_FLAGS:
        sys.stderr.write(f"{MARK} {args[0]!r} flags={args[2]:#o}\n")


def main() -> None:
    app, port = sys.argv[1], int(sys.argv[2])
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    sys.addaudithook(_hook)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="debug", factory=True)


if __name__ == "__main__":
    main()

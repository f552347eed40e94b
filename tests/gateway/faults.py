"""Misbehaving backends for fault tests only: nothing listening, a server that never answers, a server
that fails with 500."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

from samples.servers import http_server
from services.launch import free_port


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@contextlib.contextmanager
def hanging_url() -> Iterator[str]:
    """Accepts connections (the kernel completes them from the backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


class _Failing(BaseHTTPRequestHandler):
    def _fail(self) -> None:
        body = json.dumps({"detail": "internal trouble"}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _fail

    def log_message(self, *_: object) -> None:
        pass


def failing_url() -> contextlib.AbstractContextManager[str]:
    return http_server(_Failing)

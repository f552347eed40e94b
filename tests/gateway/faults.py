"""Misbehaving backends for fault tests only: nothing listening, a server that never answers, a server
that fails with 500, a server that sheds every request with 503 and Retry-After. Stand-ins, because the
real emotion and recommender services cannot be made to hang, fail or shed on demand; every other test
talks to the real services."""

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


class _Answering(BaseHTTPRequestHandler):
    status = 500
    detail = "internal trouble"
    headers_out: dict[str, str] = {}

    def _answer(self) -> None:
        body = json.dumps({"detail": self.detail}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in self.headers_out.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *_: object) -> None:
        pass


class _Busy(_Answering):
    status = 503
    detail = "busy: no worker free"
    headers_out = {"Retry-After": "7"}


def failing_url() -> contextlib.AbstractContextManager[str]:
    return http_server(_Answering)


def busy_url() -> contextlib.AbstractContextManager[str]:
    """Sheds every request with 503 and Retry-After: 7, as an overloaded service does."""
    return http_server(_Busy)

"""bench.overload's clients (wrk with bench/overload.lua) against a small real server that answers each
connection's requests in turn with a slow 200 that found a face and a quick 503 with Retry-After: every
client posts the frame under its own session, wait the Retry-After before its next request, and times
the answered and the shed requests apart. A stand-in, because the real gateway sheds only when it is
full, never on demand for every other request (tests/evidence/test_http_limits.py sheds it for real)."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from bench.overload import wrk_phase
from samples.servers import http_server

SLOW_S = 0.2
RETRY_AFTER_S = 1
DURATION_S = 3


class _Turns(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the gateway
    lock = threading.Lock()
    seen: Counter[str] = Counter()
    bodies: set[bytes] = set()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        with self.lock:
            self.seen[query["session"][0]] += 1
            self.bodies.add(body)
            turn = self.seen[query["session"][0]]
        if turn % 2:
            time.sleep(SLOW_S)
            self._answer(200, {"faces": [{"emotion": "happy"}]})
        else:
            self._answer(503, {"detail": "busy"}, {"Retry-After": str(RETRY_AFTER_S)})

    def _answer(self, status: int, content: object, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(content).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_wrk_clients_wait_the_retry_after_and_time_answers_and_sheds_apart(tmp_path: Path) -> None:
    frame = tmp_path / "frame.jpg"
    frame.write_bytes(b"\xff\xd8 not really a jpeg \xff\xd9")
    with http_server(_Turns) as url:
        row = wrk_phase(url, frame, clients=2, duration_s=DURATION_S)
    assert set(_Turns.seen) == {"overload-2-1", "overload-2-2"}
    (body,) = _Turns.bodies
    assert b'name="image"; filename="frame.jpg"' in body and frame.read_bytes() in body
    # A round is a slow 200, a quick 503 and the Retry-After: at most a few rounds a client in the time.
    rounds = DURATION_S / (SLOW_S + RETRY_AFTER_S)
    assert all(n <= 2 * (rounds + 1) for n in _Turns.seen.values()), _Turns.seen
    assert row["answered"] >= 2 and row["shed"] >= 2 and row["errors"] == 0
    assert row["shed_without_retry_after"] == 0
    assert row["answered_ms"]["p50"] >= SLOW_S * 1000 > row["shed_ms"]["p99"]

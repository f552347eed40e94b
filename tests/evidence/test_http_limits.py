"""The HTTP limits every service has (services/common/limits.py and the server settings in
services/__main__.py), tried as an attacker would against a real gateway process (raw sockets): a huge
header is refused at once while other clients are served, idle and trickling connections are closed, a
stalled upload gets 408 within the body deadline, stalled uploads cannot grow the gateway's memory, and
when it is full a request is shed at once with 503 and Retry-After."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from bench.memory import memory_mb, server_pid
from samples.images import astronaut_jpeg
from services.launch import SERVICES, free_port, service
from tests.evidence.test_security_headers import assert_security_headers
from tests.integration.stack import Stack

HEADER_TIMEOUT_S = 2
BODY_TIMEOUT_S = 3.0
MAX_CONCURRENT = 16
SLACK_S = 1.5  # a busy 2-core machine's scheduling


@dataclass(frozen=True)
class Gateway:
    url: str
    port: int
    pid: int


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[Gateway]:
    """A gateway of its own with short deadlines, in front of the shared stack's backends."""
    port = free_port()
    env = {
        "GATEWAY_EMOTION_URL": stack.emotion,
        "GATEWAY_RECOMMENDER_URL": stack.recommender,
        "REDIS_URL": "",
        "MOODTUNES_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "MOODTUNES_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "MOODTUNES_HTTP_MAX_CONCURRENT": str(MAX_CONCURRENT),
    }
    with service("gateway", port=port, env=env) as url:
        yield Gateway(url, port, server_pid(SERVICES["gateway"][0], port))


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def outcome(sock: socket.socket, timeout: float) -> tuple[int | None, float, bytes]:
    """(status, seconds until the answer or the close, the answer): status None when the server closed
    the connection without answering, or did nothing within `timeout`."""
    start = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data) < data.find(b"\r\n\r\n") + 4 + _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        return None, timeout, data
    except OSError:
        pass
    took = time.monotonic() - start
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None
    return status, took, data


def _length(data: bytes) -> int:
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def upload_head(length: int) -> bytes:
    return (
        b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
    )


def healthz_ms(port: int) -> float:
    """Another client's GET /healthz on a new connection (http.client: httpx's own set-up per call costs
    tens of milliseconds here)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    return (time.perf_counter() - start) * 1000


def test_a_64_mb_header_is_refused_at_once_while_others_are_served(gateway: Gateway) -> None:
    sock = connect(gateway.port)
    latencies: list[float] = []
    sent = 0
    start = time.monotonic()

    def others() -> None:
        while sent < 64 * 2**20 and time.monotonic() - start < 5 and len(latencies) < 50:
            latencies.append(healthz_ms(gateway.port))

    watcher = threading.Thread(target=others)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: ")
    watcher.start()
    with contextlib.suppress(OSError):  # the server closes while we are still sending
        while sent < 64 * 2**20:
            sock.sendall(b"a" * 65536)
            sent += 65536
    status, took, _ = outcome(sock, 2.0)
    refused_after = time.monotonic() - start
    watcher.join()
    sock.close()
    assert refused_after < 2.0, refused_after
    assert status in (431, None), status
    assert sent < 8 * 2**20  # refused long before the end
    latencies.append(healthz_ms(gateway.port))
    assert statistics.median(latencies) < 100 and max(latencies) < 1000, latencies


def test_a_long_request_line_is_refused(gateway: Gateway) -> None:
    sock = connect(gateway.port)
    sock.sendall(b"GET /recommend?emotion=happy&x=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    status, took, _ = outcome(sock, 5)
    assert status in (414, 431, None) and took < 2.0


@pytest.mark.parametrize(
    ("case", "payload"),
    [
        ("nothing sent", b""),
        ("half a request head", b"GET /healthz HTTP/1.1\r\nHost: test\r\n"),
    ],
)
def test_idle_and_unfinished_connections_are_closed(gateway: Gateway, case: str, payload: bytes) -> None:
    sock = connect(gateway.port)
    sock.sendall(payload)
    status, took, _ = outcome(sock, HEADER_TIMEOUT_S + SLACK_S + 5)
    sock.close()
    assert status in (None, 408) and took <= HEADER_TIMEOUT_S + SLACK_S, (status, took)


def test_a_trickled_request_head_is_closed_by_its_deadline(gateway: Gateway) -> None:
    sock = connect(gateway.port)
    start = time.monotonic()
    with contextlib.suppress(OSError):
        for byte in b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 100:
            sock.sendall(bytes([byte]))
            time.sleep(0.2)
            if time.monotonic() - start > HEADER_TIMEOUT_S + SLACK_S + 5:
                break
    status, _, _ = outcome(sock, 1)
    sock.close()
    assert status in (None, 408) and time.monotonic() - start <= HEADER_TIMEOUT_S + SLACK_S + 1.5


def test_an_idle_keep_alive_connection_is_closed(gateway: Gateway) -> None:
    sock = connect(gateway.port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    assert outcome(sock, 5)[0] == 200
    status, took, data = outcome(sock, HEADER_TIMEOUT_S + SLACK_S + 5)
    sock.close()
    assert status is None and data == b"" and took <= HEADER_TIMEOUT_S + SLACK_S, took


def test_a_stalled_upload_gets_408_within_the_body_deadline(gateway: Gateway) -> None:
    sock = connect(gateway.port)
    sock.sendall(upload_head(1_000_000) + b"\xff" * 100_000)
    status, took, data = outcome(sock, BODY_TIMEOUT_S + SLACK_S + 5)
    sock.close()
    assert status == 408 and BODY_TIMEOUT_S - 0.5 <= took <= BODY_TIMEOUT_S + SLACK_S, (status, took)
    assert "not received within" in json.loads(data.split(b"\r\n\r\n", 1)[1])["detail"]
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert b"\r\nx-content-type-options: nosniff" in head and b"\r\ncontent-security-policy: " in head


def test_sixty_stalled_uploads_add_at_most_50_mb_to_the_gateway(gateway: Gateway) -> None:
    before = memory_mb(gateway.pid)["rss_mb"]
    size = 7_900_000
    socks = [connect(gateway.port) for _ in range(60)]
    waiting: list[bool] = []  # per upload: still waiting after it stalled (admitted, not refused)

    def stall(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # a shed upload is answered and closed mid-send
            sock.sendall(upload_head(size + 100_000) + b"\xff" * size)
        status, took, _ = outcome(sock, 1.0)
        waiting.append(status is None and took >= 1.0)

    threads = [threading.Thread(target=stall, args=(s,)) for s in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    during = memory_mb(gateway.pid)["rss_mb"]
    time.sleep(BODY_TIMEOUT_S + SLACK_S)
    after = memory_mb(gateway.pid)["rss_mb"]
    for s in socks:
        s.close()
    # The body budget (32 MB) holds four 8 MB uploads at once; the rest were refused at once (503, or
    # the connection closed while they were still sending).
    assert len(waiting) == 60 and sum(waiting) <= 4, waiting
    assert during - before <= 50 and after - before <= 50, (before, during, after)
    assert healthz_ms(gateway.port) < 1000


def test_a_full_gateway_sheds_at_once_with_retry_after(gateway: Gateway) -> None:
    held = [connect(gateway.port) for _ in range(MAX_CONCURRENT)]
    for sock in held:
        sock.sendall(upload_head(1000))  # every slot waits for a body that never comes
    time.sleep(0.5)
    start = time.monotonic()
    resp = httpx.get(f"{gateway.url}/recommend", params={"emotion": "happy"}, timeout=10)
    took = time.monotonic() - start
    assert resp.status_code == 503 and took < 1.0, (resp.status_code, took)
    assert resp.headers["retry-after"] == "1" and "busy" in resp.json()["detail"]
    assert_security_headers(resp)
    assert healthz_ms(gateway.port) < 1000  # health is never shed
    for sock in held:
        assert outcome(sock, BODY_TIMEOUT_S + SLACK_S + 5)[0] == 408
        sock.close()
    assert httpx.get(f"{gateway.url}/recommend", params={"emotion": "happy"}, timeout=10).status_code == 200


def test_uploads_declared_but_not_sent_hold_no_share_of_the_body_budget(gateway: Gateway) -> None:
    held = [connect(gateway.port) for _ in range(6)]
    for sock in held:
        sock.sendall(upload_head(8_380_000))  # the whole budget declared, nothing sent
    time.sleep(0.5)
    resp = httpx.post(
        f"{gateway.url}/predict", files={"image": ("f.jpg", astronaut_jpeg(), "image/jpeg")}, timeout=30
    )
    assert resp.status_code == 200 and len(resp.json()["faces"]) == 1, resp.text
    for sock in held:
        sock.close()

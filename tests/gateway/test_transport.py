"""The gateway's own httpx transport (HTTP/1.1 over asyncio streams) against small real servers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest

from services.common.upload import Body
from services.gateway.clients import EmotionClient
from services.gateway.transport import Http11Transport
from services.launch import free_port

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    return head + await reader.readexactly(length)


def _served(handler: Handler, calls: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with (
            server,
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", transport=Http11Transport(), timeout=httpx.Timeout(2.0)
            ) as client,
        ):
            return await calls(client)

    return asyncio.run(main())


def test_keeps_one_connection_and_reads_length_and_chunked_answers() -> None:
    connections: list[list[bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen: list[bytes] = []
        connections.append(seen)
        while not reader.at_eof():
            try:
                request = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append(request)
            if b"/chunked" in request:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                )
            else:
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Echo: yes\r\n\r\nhello")
            await writer.drain()
        writer.close()

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        frame = bytes(range(256)) * 200
        return [
            await client.post("/predict?detect=false", content=frame, headers={"X-Request-ID": "r1"}),
            await client.get("/chunked"),
            await client.get("/again"),
        ]

    posted, chunked, again = _served(handler, calls)
    assert (posted.status_code, posted.content, posted.headers["x-echo"]) == (201, b"hello", "yes")
    assert (chunked.status_code, chunked.content) == (200, b"abcde")
    assert again.status_code == 201
    assert len(connections) == 1 and len(connections[0]) == 3  # one kept-alive connection for all three
    first = connections[0][0]
    assert first.startswith(b"POST /predict?detect=false HTTP/1.1\r\n")
    assert b"x-request-id: r1" in first.lower() and first.endswith(bytes(range(256)) * 200)


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # keep-alive promised, then closed: as a server's idle timeout does

    async def calls(client: httpx.AsyncClient) -> list[int]:
        codes = []
        for _ in range(3):
            codes.append((await client.get("/")).status_code)
            await asyncio.sleep(0.05)
        return codes

    assert _served(handler, calls) == [200, 200, 200]
    assert connections == 3


def test_errors_are_httpx_errors() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async def timed_out(client: httpx.AsyncClient) -> None:
        await client.get("/", timeout=0.2)

    with pytest.raises(httpx.ReadTimeout):
        _served(slow, timed_out)

    async def refused() -> None:
        async with httpx.AsyncClient(transport=Http11Transport(retries=1)) as client:
            await client.get(f"http://127.0.0.1:{free_port()}/")

    with pytest.raises(httpx.ConnectError):
        asyncio.run(refused())

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    async def get(client: httpx.AsyncClient) -> None:
        await client.get("/")

    with pytest.raises(httpx.RemoteProtocolError):
        _served(garbage, get)


def test_backend_urls_keep_the_settings_path_prefix() -> None:
    lines: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                request = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            lines.append(request.split(b"\r\n", 1)[0])
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"faces":1}')
            await writer.drain()

    async def main() -> tuple[str, bytes]:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            client = EmotionClient(f"http://127.0.0.1:{port}/emotion/", 1.0, 2.0)
            try:
                ready = await client.readiness("rid-1")
                answer = await client.predict(Body(b"jpeg", "image/jpeg", None), False, "rid-2")
            finally:
                await client.aclose()
        return ready, answer

    assert asyncio.run(main()) == ("ok", b'{"faces":1}')
    assert lines == [b"GET /emotion/readyz HTTP/1.1", b"POST /emotion/predict?detect=false HTTP/1.1"]

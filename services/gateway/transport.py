"""httpx's transport for the gateway's backends: HTTP/1.1 over asyncio streams, keep-alive connections
reused, responses parsed by httptools (uvicorn's parser).

httpx's default transport (httpcore over anyio) was the largest part of the gateway's CPU time on a
forwarded frame in a profile of /analyze under load, and on a machine whose cores also run the emotion
model that CPU is frames not served (reports/forwarding.md: the gateway's CPU time per /analyze). The
clients keep httpx's API (requests, timeouts, errors); only the connection layer is this one. It speaks
what the backends, our uvicorn services, answer: one request at a time per connection, bodies with a
length or chunked. A connection the backend closed while idle is dropped before use; a request that
finds its reused connection dead before any answer byte is sent once more on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import httptools
import httpx

READ_CHUNK = 64 * 1024


class _Answer:
    """httptools' callbacks for one response."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.complete = False
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        # Asked here: once the parser has moved past the message it no longer says.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, head: bytes, body: bytes, timeout_s: float | None) -> tuple[int, _Answer, bool]:
        """Sends one request; (status, answer, whether the connection may be reused). Raises
        ConnectionError with no answer byte read (the caller may retry on a new connection), TimeoutError
        when the backend takes longer than timeout_s to take the request and answer it."""
        async with asyncio.timeout(timeout_s):
            self.writer.write(head)
            self.writer.write(body)  # written as it is: a frame is not copied into one buffer with the head
            await self.writer.drain()
            answer = _Answer()
            got = False
            while not answer.complete:
                data = await self.reader.read(READ_CHUNK)
                if not data:
                    if got:
                        raise httpx.RemoteProtocolError("backend closed the connection mid-answer")
                    raise ConnectionResetError("backend closed the connection before answering")
                got = True
                try:
                    answer.parser.feed_data(data)
                except httptools.HttpParserError as exc:
                    raise httpx.RemoteProtocolError(f"malformed answer: {exc}") from exc
        return answer.parser.get_status_code(), answer, answer.keep_alive


class Http11Transport(httpx.AsyncBaseTransport):
    def __init__(self, retries: int = 0, max_connections: int = 50, max_idle: int = 20) -> None:
        self.retries = (
            retries  # connection attempts after a failed one: the first immediate, then backing off
        )
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        # Requests beyond this many in flight wait (a flood must not open a connection each).
        self._slots = asyncio.Semaphore(max_connections)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self._slots:
            return await self._handle(request)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        url = request.url
        key = (url.host, url.port or 80)
        head = b"%s %s HTTP/1.1\r\n%s\r\n" % (
            request.method.encode("ascii"),
            url.raw_path,
            b"".join(b"%s: %s\r\n" % (name, value) for name, value in request.headers.raw),
        )
        body = await request.aread()
        conn, reused = self._idle_connection(key), True
        if conn is None:
            conn, reused = await self._connect(key, timeout.get("connect")), False
        try:
            try:
                status, answer, keep = await conn.exchange(head, body, timeout.get("read"))
            except ConnectionError:
                conn.close()
                if not reused:
                    raise
                # The backend closed this idle connection as the request went out: nothing was answered.
                conn = await self._connect(key, timeout.get("connect"))
                status, answer, keep = await conn.exchange(head, body, timeout.get("read"))
        except TimeoutError as exc:
            conn.close()
            raise httpx.ReadTimeout(f"no answer within {timeout.get('read')} s", request=request) from exc
        except (ConnectionError, OSError) as exc:
            conn.close()
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        except BaseException:
            conn.close()  # a cancelled request leaves the connection mid-exchange
            raise
        if keep:
            self._release(key, conn)
        else:
            conn.close()
        return httpx.Response(status, headers=answer.headers, content=b"".join(answer.body), request=request)

    def _idle_connection(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    def _release(self, key: tuple[str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, deque())
        if len(idle) < self.max_idle:
            idle.append(conn)
        else:
            conn.close()

    async def _connect(self, key: tuple[str, int], connect_timeout: float | None) -> _Connection:
        for attempt in range(self.retries + 1):
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*key), connect_timeout)
                return _Connection(reader, writer)
            except TimeoutError as exc:
                if attempt == self.retries:
                    raise httpx.ConnectTimeout(f"no connection within {connect_timeout} s") from exc
            except OSError as exc:
                if attempt == self.retries:
                    raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
            if attempt:
                await asyncio.sleep(0.5 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                conn = idle.pop()
                conn.close()
                with contextlib.suppress(OSError):
                    await conn.writer.wait_closed()

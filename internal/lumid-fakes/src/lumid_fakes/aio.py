"""Serve any `FakeServer`'s `handle` from one asyncio event loop (benchmarks).

The stdlib threaded server spends a thread and a GIL hand-off per connection; as
an upstream for benchmarks it would be the bottleneck being measured. This server
parses HTTP/1.1 (keep-alive, Content-Length bodies) with an `asyncio.Protocol`,
calls the fake's `handle` in the loop and writes each reply with one `write`.

`handle` runs in the loop, so a fake that sleeps or hangs (`mode="hang"`, a
`delay`) stalls every connection: use the threaded server for those.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from typing import Final

from .server import FakeServer, Recorded, Reply

__all__ = ["STATS_PATH", "AsyncioFakeServer"]

STATS_PATH: Final = "/_fake/stats"
_REASONS: Final = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
_MAX_HEAD: Final = 64 * 1024


class AsyncioFakeServer:
    """Serve `fake.handle` on `host:port` from the running event loop.

    Requests are counted per path (`GET /_fake/stats` answers the counts); they are
    appended to `fake.requests` only when `record` is true.
    """

    def __init__(
        self, fake: FakeServer, host: str = "127.0.0.1", port: int = 0, *, record: bool = False
    ) -> None:
        self.fake = fake
        self.host = host
        self.port = port
        self.record = record
        self.counts: Counter[str] = Counter()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Protocol(self), self.host, self.port, backlog=1024, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def dispatch(self, request: Recorded) -> Reply | None:
        if request.path == STATS_PATH:
            return Reply(200, {"requests": sum(self.counts.values()), "paths": dict(self.counts)})
        self.counts[request.path] += 1
        if self.record:
            with self.fake.lock:
                self.fake.requests.append(request)
        return self.fake.handle(request)


class _Protocol(asyncio.Protocol):
    def __init__(self, server: AsyncioFakeServer) -> None:
        self._server = server
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._peer = (str(peer[0]), int(peer[1]))

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while self._transport is not None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > _MAX_HEAD:
                    self._transport.close()
                return
            head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
            headers: dict[str, str] = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if len(self._buf) < end + 4 + length:
                return
            body = bytes(self._buf[end + 4 : end + 4 + length])
            del self._buf[: end + 4 + length]
            parts = head[0].split(" ")
            if len(parts) != 3:
                self._transport.close()
                return
            request = Recorded(parts[0], parts[1], headers, body, self._peer)
            self._respond(self._server.dispatch(request), headers.get("connection", ""))

    def _respond(self, reply: Reply | None, connection: str) -> None:
        transport = self._transport
        assert transport is not None
        if reply is None:  # drop the connection without a reply
            transport.close()
            self._transport = None
            return
        payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        lines = [
            f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}",
            "Content-Type: " + reply.headers.get("Content-Type", "application/json"),
            f"Content-Length: {len(payload)}",
        ]
        lines.extend(f"{k}: {v}" for k, v in reply.headers.items() if k != "Content-Type")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        if connection.lower() == "close":
            transport.close()
            self._transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

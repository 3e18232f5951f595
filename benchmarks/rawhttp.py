"""A minimal keep-alive HTTP/1.1 client: the floor a real client could approach.

Only what the benchmarks need: POST with a body, replies with Content-Length.
`RawPool` hands N persistent connections to any number of callers.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from urllib.parse import urlsplit

__all__ = ["RawConnection", "RawPool"]


class RawConnection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader, self._writer = reader, writer
        return reader, writer

    async def post(
        self, path: str, body: bytes, content_type: str, headers: str = ""
    ) -> tuple[int, bytes]:
        if self._reader is None or self._writer is None:
            reader, writer = await self._connect()
        else:
            reader, writer = self._reader, self._writer
        writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
            ).encode("latin-1")
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, await reader.readexactly(length)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()
            self._writer = self._reader = None


class RawPool:
    """`size` persistent connections shared by any number of callers."""

    def __init__(self, url: str, size: int) -> None:
        parts = urlsplit(url)
        self.path = parts.path or "/"
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self._all = [RawConnection(host, port) for _ in range(size)]
        self._idle: asyncio.Queue[RawConnection] = asyncio.Queue()
        for conn in self._all:
            self._idle.put_nowait(conn)

    async def post_form(self, body: bytes) -> Any:
        conn = await self._idle.get()
        try:
            status, payload = await conn.post(self.path, body, "application/x-www-form-urlencoded")
        finally:
            self._idle.put_nowait(conn)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        return json.loads(payload)

    async def post_json(self, body: bytes, headers: str = "") -> Any:
        conn = await self._idle.get()
        try:
            status, payload = await conn.post(self.path, body, "application/json", headers)
        finally:
            self._idle.put_nowait(conn)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        return json.loads(payload)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()

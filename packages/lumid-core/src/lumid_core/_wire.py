"""The socket side of one pooled HTTP/1.1 connection: an asyncio protocol that buffers.

It notes when the peer is done and whether anything arrived while the connection
sat idle (such a connection is never reused: see `_transport`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

__all__ = ["Broken", "Wire"]

READ_CHUNK: Final = 64 * 1024
"""Reading pauses once this much is buffered and not yet consumed."""


class Broken(Exception):
    """The connection failed, broke or spoke bad HTTP (the reason holds no header value)."""


class Wire(asyncio.Protocol):
    """The socket side of one connection: buffers what arrives, notes when it ends."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._ended = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > READ_CHUNK and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def clean(self) -> bool:
        """Open, and nothing arrived since the last reply (safe to send a request on)."""
        transport = self.transport
        return (
            not self._ended
            and not self._chunks
            and transport is not None
            and not transport.is_closing()
        )

    async def read(self) -> bytes:
        """The bytes buffered so far (waiting for some), or b"" once the peer is done."""
        while not self._chunks:
            if self._ended:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def write(self, data: bytes) -> None:
        """Queue `data` for sending (requests are small: no back-pressure needed)."""
        if self.transport is None or self.transport.is_closing():
            raise Broken("WriteError: connection closed")
        self.transport.write(data)

    def close(self) -> None:
        """Drop the connection at once (abort: nothing more is read or sent)."""
        if self.transport is not None:
            self.transport.abort()
        self._ended = True
        self._wake()

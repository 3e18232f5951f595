"""`LaneTransport`: an httpx transport of one-connection lanes, O(1) per request.

What a `PooledClient`'s plain httpx methods run on (the bounded `exchange` runs
on the keep-alive pool in `_transport`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import httpx

__all__ = ["LaneTransport"]


class LaneTransport(httpx.AsyncBaseTransport):
    """`size` one-connection httpx transports; each request borrows an idle one.

    httpx's connection pool walks every connection it holds each time a request
    enters or leaves it (an is-readable probe: a `getpeername` and a `poll` per idle
    connection), so one pool of N connections pays O(N) per request and gets slower
    as concurrency rises. A lane's pool never holds more than one connection, and an
    idle lane is an O(1) stack pop. The lane returns to the queue when the response
    body is closed (httpx closes it once read) or when the request fails. Waiting for
    a lane honours the request's pool timeout (`httpx.PoolTimeout`). A lane opens
    its connection on first use.
    """

    def __init__(self, size: int, *, ssl_context: ssl.SSLContext | None = None) -> None:
        if size < 1:
            raise ValueError("a LaneTransport needs at least one lane")
        context = ssl_context or httpx.create_ssl_context(trust_env=False)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._lanes = [
            httpx.AsyncHTTPTransport(verify=context, limits=limits, trust_env=False)
            for _ in range(size)
        ]
        # Last in, first out: the warmest connections are reused, the rest never open.
        self._idle: asyncio.Queue[httpx.AsyncHTTPTransport] = asyncio.LifoQueue()
        for lane in self._lanes:
            self._idle.put_nowait(lane)

    @property
    def size(self) -> int:
        """How many lanes (connections at most) the transport holds."""
        return len(self._lanes)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` on an idle lane (waiting at most the pool timeout for one)."""
        wait = request.extensions.get("timeout", {}).get("pool")
        try:
            async with asyncio.timeout(wait):
                lane = await self._idle.get()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection", request=request) from None
        try:
            response = await lane.handle_async_request(request)
        except BaseException:
            self._idle.put_nowait(lane)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _LaneStream(response.stream, self._idle, lane)
        return response

    async def aclose(self) -> None:
        """Close every lane's connection."""
        for lane in self._lanes:
            await lane.aclose()


class _LaneStream(httpx.AsyncByteStream):
    """A response body that gives its lane back when closed (once)."""

    def __init__(
        self,
        inner: httpx.AsyncByteStream,
        idle: asyncio.Queue[httpx.AsyncHTTPTransport],
        lane: httpx.AsyncHTTPTransport,
    ) -> None:
        self._inner = inner
        self._idle = idle
        self._lane: httpx.AsyncHTTPTransport | None = lane

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            lane, self._lane = self._lane, None
            if lane is not None:
                self._idle.put_nowait(lane)

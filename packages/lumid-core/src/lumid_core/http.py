"""Upstream HTTP for every plugin: the pooled client, its lanes, and bounded exchanges.

`exchange` is the one way the plugins talk to an upstream (lum.id, Runmesh, a
remote optimizer): one deadline for the whole exchange (waiting for a lane,
connecting, sending, the headers and the whole body) and a cap on the reply body,
enforced while it streams in. `describe_http_error` is the one place an httpx
failure becomes the reason string that logs, 503s and `lumid doctor` show.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

import httpx

from .errors import UpstreamError
from .settings import LumidSettings

__all__ = [
    "DEFAULT_MAX_REPLY_BYTES",
    "LaneTransport",
    "ReplyTooLarge",
    "UpstreamError",
    "UpstreamReply",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "describe_http_error",
    "exchange",
    "exchange_blocking",
    "make_http_client",
]

DEFAULT_MAX_REPLY_BYTES: Final = 256 * 1024
"""The default cap on a reply body (`LUMID_MAX_REPLY_BYTES`)."""
_USER_AGENT: Final = "lumid-core"
# Replies are small JSON: ask for them as they are, so the cap counts what is kept.
_IDENTITY: Final = {"Accept-Encoding": "identity"}


class UpstreamTimeout(UpstreamError):
    """The whole exchange did not finish within its deadline."""


class UpstreamUnreachable(UpstreamError):
    """The connection failed or broke (refused, reset, protocol error, TLS...)."""


class ReplyTooLarge(UpstreamError):
    """The reply body is larger than the cap (declared or counted while streaming)."""


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """A complete reply: status, headers and the whole (capped) body."""

    status: int
    headers: httpx.Headers
    body: bytes

    def text(self, limit: int = 300) -> str:
        """The first `limit` characters of the body, undecodable bytes replaced."""
        return self.body[: limit * 4].decode("utf-8", errors="replace")[:limit]


def describe_http_error(exc: httpx.HTTPError, deadline: float | None = None) -> str:
    """The reason string for an httpx failure (logged, shown in 503s and the doctor)."""
    if isinstance(exc, httpx.TimeoutException):
        return f"no reply within {deadline:g}s" if deadline is not None else "no reply in time"
    detail = str(exc)
    return (f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__)[:300]


async def exchange(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    deadline: float,
    max_bytes: int,
    **request: Any,
) -> UpstreamReply:
    """Send one request on `client` and read the whole reply, all within `deadline`.

    `request` is passed to `client.build_request` (`data=`, `json=`, `headers=`...). Raises
    `UpstreamTimeout` past the deadline, `ReplyTooLarge` when the body exceeds
    `max_bytes` (stopped as soon as it does: nothing larger is ever held), and
    `UpstreamUnreachable` for any other transport failure. Any status is a reply.
    """
    headers = {**_IDENTITY, **(request.pop("headers", None) or {})}
    try:
        async with asyncio.timeout(deadline):
            sent = client.build_request(method, url, headers=headers, **request)
            response = await client.send(sent, stream=True)
            try:
                body = await _read(response, max_bytes)
            finally:
                await response.aclose()
            return UpstreamReply(response.status_code, response.headers, body)
    except TimeoutError:
        raise UpstreamTimeout(f"no complete reply within {deadline:g}s") from None
    except httpx.HTTPError as exc:
        if isinstance(exc, httpx.TimeoutException):
            raise UpstreamTimeout(f"no complete reply within {deadline:g}s") from None
        raise UpstreamUnreachable(describe_http_error(exc, deadline)) from None


async def _read(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ReplyTooLarge(f"reply of {int(declared)} bytes is over the {max_bytes}-byte cap")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # Decoding would let a small compressed reply expand past the cap.
        raise UpstreamUnreachable(f"reply is {encoding}-encoded though identity was asked")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > max_bytes:
            raise ReplyTooLarge(f"reply is over the {max_bytes}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)


def exchange_blocking(
    method: str,
    url: str,
    *,
    deadline: float,
    max_bytes: int,
    **request: Any,
) -> UpstreamReply:
    """`exchange` for synchronous callers, on a short-lived client of its own.

    Proxy and netrc variables are ignored and redirects are not followed. Runs in a
    private event loop (in a helper thread when the caller's thread has one running).
    """

    async def run() -> UpstreamReply:
        async with httpx.AsyncClient(
            trust_env=False, follow_redirects=False, timeout=httpx.Timeout(deadline)
        ) as client:
            return await exchange(
                client, method, url, deadline=deadline, max_bytes=max_bytes, **request
            )

    return _run_blocking(run)


def _run_blocking[T](work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lumid-http") as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


def make_http_client(settings: LumidSettings) -> httpx.AsyncClient:
    """The one pooled client a plugin opens at install and closes at shutdown.

    Its connections are lanes (see `LaneTransport`): at most
    `2 * max(LUMID_INTROSPECT_CONCURRENCY, 8)` keep-alive connections, each in a pool
    of its own.
    """
    size = max(settings.lumid_introspect_concurrency, 8)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.lumid_introspect_timeout_seconds),
        transport=LaneTransport(size * 2),
        headers={"User-Agent": _USER_AGENT},
        follow_redirects=False,
        trust_env=False,
    )


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

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a LaneTransport needs at least one lane")
        context = httpx.create_ssl_context(trust_env=False)
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

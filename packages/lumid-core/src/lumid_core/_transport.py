"""A small keep-alive HTTP/1.1 connection pool on asyncio: the fast path of `exchange`.

Why it exists: httpx spends ~400 µs of event-loop CPU per request in its client and
connection-pool layers; this pool does the same exchange (one request, one complete
reply) for a fraction of that (docs/performance.md). The socket side of a connection
is `_wire.Wire`, the bytes on it are `_http11`'s. It does only what `exchange`
needs: no proxies, no netrc, no redirects, no cookies, no decompression.

Rules it keeps:

- at most `size` connections open at once, over all origins; a caller waits for a
  free one (the caller's deadline bounds the wait);
- a connection is reused only after a complete reply on a connection both sides keep
  alive; after any error, cancellation (a timeout), partial read or unsolicited bytes
  it is closed, never reused;
- **no request is ever sent twice.** An idle connection the server has closed (or
  sent anything on) is noticed before it is used and replaced by a fresh one, so a
  request is written only once, on a connection believed open. If the server closes
  it in the instant between that check and the write, the exchange fails
  (`Broken`) rather than resend a request that may have been processed;
- error reasons name what failed, never a header value.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import httpx

from ._http11 import Headers, RawReply, TooLarge, encode_request, read_reply
from ._wire import Broken, Wire

__all__ = ["Broken", "ConnectionPool", "Origin", "RawReply", "TooLarge"]

_URL_CACHE_SIZE: Final = 256


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a connection goes: scheme, host and port."""

    scheme: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class _Target:
    origin: Origin
    path: bytes
    host_header: bytes


class _Connection:
    """One HTTP/1.1 connection: `_http11`'s codec over a `Wire`."""

    __slots__ = ("origin", "wire")

    def __init__(self, origin: Origin, wire: Wire) -> None:
        self.origin = origin
        self.wire = wire

    async def exchange(
        self, method: bytes, target: _Target, headers: Headers, body: bytes, max_bytes: int
    ) -> tuple[RawReply, bool]:
        """Send one request and read its whole reply; also whether the connection may be reused."""
        self.wire.write(encode_request(method, target.path, headers, body))
        reply, reusable = await read_reply(
            self.wire.read, max_bytes, head_request=method == b"HEAD"
        )
        for name, value in reply.headers:
            if name == b"content-encoding":
                encoding = value.strip().lower().decode("latin-1")
                if encoding not in ("", "identity"):
                    # Decoding would let a small compressed reply expand past the cap.
                    raise Broken(f"reply is {encoding[:40]}-encoded though identity was asked")
        return reply, reusable


class ConnectionPool:
    """At most `size` keep-alive HTTP/1.1 connections, shared by any number of callers.

    Idle connections are kept per origin and reused last-in first-out (the warmest
    first); one found closed by the server is dropped before use, never written to.
    `https` connections verify the server's certificate and host name with
    `ssl_context` and send SNI.
    """

    def __init__(self, size: int, *, ssl_context: ssl.SSLContext | None = None) -> None:
        if size < 1:
            raise ValueError("a ConnectionPool needs at least one connection")
        self._size = size
        self._slots = asyncio.Semaphore(size)
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open = 0  # idle + in use + being opened; never above size
        self._ssl = ssl_context
        self._targets: dict[str, _Target] = {}
        self._closed = False

    @property
    def size(self) -> int:
        """How many connections the pool may hold open at once."""
        return self._size

    @property
    def open_connections(self) -> int:
        """How many connections are open (idle, in use or being opened) now."""
        return self._open

    def target(self, url: str) -> _Target:
        """`url` parsed into origin, request target and Host header (cached)."""
        found = self._targets.get(url)
        if found is not None:
            return found
        try:
            parts = urlsplit(url)
        except ValueError:
            raise Broken("InvalidURL: the URL cannot be parsed") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise Broken(f"UnsupportedProtocol: not an http(s) URL ({scheme or 'no scheme'})")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise Broken("InvalidURL: bad port") from None
        host = parts.hostname
        default = port == (443 if scheme == "https" else 80)
        shown = f"[{host}]" if ":" in host else host
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        found = _Target(
            Origin(scheme, host, port),
            path.encode("ascii", "strict"),
            (shown if default else f"{shown}:{port}").encode("idna"),
        )
        if len(self._targets) >= _URL_CACHE_SIZE:
            self._targets.clear()
        self._targets[url] = found
        return found

    async def request(
        self, method: str, url: str, headers: Headers, body: bytes, max_bytes: int
    ) -> RawReply:
        """Send one request (`headers` without Host) and return its complete reply.

        Raises `Broken` for any connection or protocol failure and `TooLarge` when the
        body is over `max_bytes`. The caller bounds the time (cancellation is safe).
        """
        try:
            target = self.target(url)
        except UnicodeError:
            raise Broken("InvalidURL: the URL is not ASCII") from None
        headers = [(b"host", target.host_header), *headers]
        async with self._slots:
            if self._closed:
                raise Broken("PoolClosed: the client is closed")
            conn = self._checkout(target.origin) or await self._connect(target.origin)
            try:
                reply, reusable = await conn.exchange(
                    method.encode("ascii"), target, headers, body, max_bytes
                )
            except BaseException:
                self._discard(conn)
                raise
            if reusable and not self._closed:
                self._idle.setdefault(conn.origin, []).append(conn)
            else:
                self._discard(conn)
            return reply

    def _checkout(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.wire.clean:
                return conn
            self._discard(conn)  # closed by the server (or spoke) while idle: never reused
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        if self._open >= self._size:
            self._evict_other()
        self._open += 1
        loop = asyncio.get_running_loop()
        try:
            if origin.scheme == "https":
                context = self._ssl if self._ssl is not None else _default_context()
                _, wire = await loop.create_connection(
                    Wire, origin.host, origin.port, ssl=context, server_hostname=origin.host
                )
            else:
                _, wire = await loop.create_connection(Wire, origin.host, origin.port)
        except BaseException as exc:
            self._open -= 1
            if isinstance(exc, ssl.SSLError):
                raise Broken(f"ConnectError: TLS: {_ssl_reason(exc)}") from None
            if isinstance(exc, OSError):
                raise Broken(f"ConnectError: {exc}"[:300]) from None
            raise
        return _Connection(origin, wire)

    def _evict_other(self) -> None:
        # Every slot holder but us has a connection, so an idle one exists elsewhere.
        for idle in self._idle.values():
            if idle:
                self._discard(idle.pop(0))
                return

    def _discard(self, conn: _Connection) -> None:
        conn.wire.close()
        self._open -= 1

    async def aclose(self) -> None:
        """Close every idle connection; ones in use close when their exchange ends."""
        self._closed = True
        dropped = False
        for idle in self._idle.values():
            while idle:
                self._discard(idle.pop())
                dropped = True
        self._idle.clear()
        if dropped:
            await asyncio.sleep(0)  # let the loop close the sockets (abort defers it)


_DEFAULT_CONTEXT: ssl.SSLContext | None = None


def _default_context() -> ssl.SSLContext:
    # The same trust httpx applies today (its bundled CA list, hostname checked).
    global _DEFAULT_CONTEXT
    if _DEFAULT_CONTEXT is None:
        _DEFAULT_CONTEXT = httpx.create_ssl_context(trust_env=False)
    return _DEFAULT_CONTEXT


def _ssl_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed ({exc.verify_message})"[:200]
    return (exc.reason or type(exc).__name__)[:200]

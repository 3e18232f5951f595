"""Upstream HTTP for every plugin: the pooled client and bounded exchanges.

`exchange` is the one way the plugins talk to an upstream (lum.id, Runmesh, a
remote optimizer): one deadline for the whole exchange (waiting for a lane,
connecting, sending, the headers and the whole body) and a cap on the reply body,
enforced while it streams in. `describe_http_error` is the one place an httpx
failure becomes the reason string that logs, 503s and `lumid doctor` show. The
keep-alive pool is in `_transport` (its socket side in `_wire`), the httpx lanes in
`lanes`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlencode

import httpx

from ._transport import Broken, ConnectionPool, TooLarge
from .errors import UpstreamError
from .lanes import LaneTransport
from .settings import LumidSettings

__all__ = [
    "DEFAULT_MAX_REPLY_BYTES",
    "LaneTransport",
    "PooledClient",
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
# What the pooled fast path of `exchange` encodes itself; anything else goes to httpx.
_POOLED_KEYS: Final = frozenset({"headers", "data", "json", "content", "timeout"})


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

    On a `PooledClient` (what `make_http_client` returns) the exchange runs on the
    client's own keep-alive pool (`lumid_core._transport`), a fraction of httpx's
    per-request CPU, with the same guarantees; other clients go through httpx.
    """
    if isinstance(client, PooledClient) and request.keys() <= _POOLED_KEYS:
        return await _exchange_pooled(client, method, url, deadline, max_bytes, request)
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


async def _exchange_pooled(
    client: PooledClient,
    method: str,
    url: str,
    deadline: float,
    max_bytes: int,
    request: dict[str, Any],
) -> UpstreamReply:
    headers = {**client.default_headers, "accept-encoding": "identity"}
    extra = request.get("headers")
    if extra:
        headers.update((k.lower(), v) for k, v in extra.items())
    body = _encode_body(request, headers)
    if body or method not in ("GET", "HEAD"):
        headers["content-length"] = str(len(body))
    try:
        wire = [(k.encode("ascii"), v.encode("latin-1")) for k, v in headers.items()]
    except UnicodeError:
        raise UpstreamUnreachable("LocalProtocolError: a request header is not latin-1") from None
    try:
        async with asyncio.timeout(deadline):
            reply = await client.pool.request(method, url, wire, body, max_bytes)
    except TimeoutError:
        raise UpstreamTimeout(f"no complete reply within {deadline:g}s") from None
    except TooLarge as exc:
        raise ReplyTooLarge(str(exc)) from None
    except Broken as exc:
        raise UpstreamUnreachable(str(exc)) from None
    return UpstreamReply(reply.status, httpx.Headers(reply.headers), reply.body)


def _encode_body(request: dict[str, Any], headers: dict[str, str]) -> bytes:
    """The body of `data=` (a form), `json=` or `content=`, as httpx would encode it."""
    if (data := request.get("data")) is not None:
        headers.setdefault("content-type", "application/x-www-form-urlencoded")
        return urlencode(data, doseq=True).encode("ascii")
    if (payload := request.get("json")) is not None:
        headers.setdefault("content-type", "application/json")
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    content = request.get("content")
    if content is None:
        return b""
    return content.encode("utf-8") if isinstance(content, str) else bytes(content)


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


def make_http_client(settings: LumidSettings) -> PooledClient:
    """The one pooled client a plugin opens at install and closes at shutdown.

    `exchange` on it uses at most `2 * max(LUMID_INTROSPECT_CONCURRENCY, 8)`
    keep-alive connections (see `PooledClient`).
    """
    size = max(settings.lumid_introspect_concurrency, 8)
    return PooledClient(
        size * 2,
        timeout=settings.lumid_introspect_timeout_seconds,
        headers={"User-Agent": _USER_AGENT},
    )


class PooledClient(httpx.AsyncClient):
    """An httpx client whose `exchange`s run on a keep-alive pool of its own.

    `exchange(client, ...)` sends through `pool` (a `ConnectionPool` of at most
    `size` connections); the httpx methods (`get`, `post`, `send`...) still work, on
    `size` one-connection lanes (`LaneTransport`) opened only if they are used. No
    proxy or netrc variables, no redirects; https is verified (`ssl_context`, else
    the same CA list httpx uses). `headers` are sent with every request.
    """

    def __init__(
        self,
        size: int,
        *,
        timeout: float,
        headers: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            timeout=httpx.Timeout(timeout),
            transport=LaneTransport(size, ssl_context=ssl_context),
            headers=headers,
            follow_redirects=False,
            trust_env=False,
        )
        self.pool = ConnectionPool(size, ssl_context=ssl_context)
        self.default_headers = {k.lower(): v for k, v in (headers or {}).items()}

    async def aclose(self) -> None:
        """Close the pool's connections and httpx's."""
        await self.pool.aclose()
        await super().aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.pool.aclose()  # httpx's own __aexit__ does not call aclose()
        await super().__aexit__(exc_type, exc_value, traceback)

"""lum.id identity: bearer token -> `PrincipalContext` through token introspection.

The request path is a cache hit: hash the token, one dict lookup, a coarse clock
(re-read at most every 50 ms).
A miss makes one `POST {LUM_ID_BASE_URL}/oauth/introspect` on the pooled client,
shared by every concurrent caller presenting the same token (single flight), with
at most `LUMID_INTROSPECT_CONCURRENCY` introspections in flight at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from hashlib import sha256
from typing import Any, Final

import httpx
from fastapi import HTTPException
from lumid_hooks import PrincipalContext

from .directory import PrincipalDirectory
from .settings import LumidSettings

__all__ = [
    "IntrospectionError",
    "LaneTransport",
    "LumIdIdentityProvider",
    "make_http_client",
    "parse_introspection",
]

_RETRY_AFTER: Final = {"Retry-After": "5"}
_USER_AGENT: Final = "lumid-core"
# Cache hits compare expiries with a copy of the clock at most this old (plus any
# stall of the event loop): a clock read costs about a tenth of a hit.
COARSE_CLOCK_SECONDS: Final = 0.05

type CacheEntry = tuple[float, PrincipalContext]


class IntrospectionError(Exception):
    """lum.id gave no usable verdict (the caller gets a 503)."""


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
        return len(self._lanes)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
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


def parse_introspection(
    body: Any, org_id: str
) -> tuple[PrincipalContext, str | None, float | None] | None:
    """Turn an introspection reply into (principal, email, exp), or None if inactive.

    Raises `IntrospectionError` when the reply is not shaped like lum.id's.
    """
    if not isinstance(body, dict):
        raise IntrospectionError("reply is not a JSON object")
    active = body.get("active")
    if not isinstance(active, bool):
        raise IntrospectionError("reply has no boolean 'active'")
    if not active:
        return None
    sub = body.get("sub")
    if not isinstance(sub, str) or not sub:
        return None
    scopes_field = body.get("scopes")
    if scopes_field is not None:
        if not isinstance(scopes_field, list) or not all(isinstance(s, str) for s in scopes_field):
            raise IntrospectionError("'scopes' is not a list of strings")
        scopes: list[str] = list(scopes_field)
    else:
        scope = body.get("scope")
        if scope is None:
            scopes = []
        elif isinstance(scope, str):
            scopes = scope.split()
        else:
            raise IntrospectionError("'scope' is not a string")
    role = body.get("role")
    if role is not None and not isinstance(role, str):
        raise IntrospectionError("'role' is not a string")
    email = body.get("email")
    exp = body.get("exp")
    principal = PrincipalContext(
        principal_id=sub,
        org_id=org_id,
        external_id=sub,
        principal_type=role or "user",
        scopes=scopes,
    )
    return (principal, email if isinstance(email, str) and email else None, _exp(exp))


def _exp(value: object) -> float | None:
    """`exp` as a finite float, or None (absent, not a number, or out of range)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        exp = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return exp if math.isfinite(exp) else None


class LumIdIdentityProvider:
    """`lumid_hooks.IdentityProvider` backed by lum.id introspection."""

    def __init__(
        self,
        *,
        name: str,
        settings: LumidSettings,
        client: httpx.AsyncClient,
        directory: PrincipalDirectory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._url = settings.introspect_url
        self._org_id = settings.lumid_org_id
        self._ttl = settings.lumid_identity_cache_ttl_seconds
        self._max_entries = settings.lumid_identity_cache_size
        self._max_token = settings.lumid_max_token_bytes
        self._timeout = settings.lumid_introspect_timeout_seconds
        self._client = client
        self._directory = directory
        self._clock = clock
        # Only the default clock is read coarsely; an injected one (tests) every time.
        self._coarse = clock is time.monotonic
        self._now: float | None = None
        self._cache: dict[bytes, CacheEntry] = {}
        self._inflight: dict[bytes, asyncio.Future[PrincipalContext | None]] = {}
        self._slots = asyncio.Semaphore(settings.lumid_introspect_concurrency)
        self.introspections = 0  # upstream calls made (diagnostics and tests)

    def __repr__(self) -> str:
        return f"LumIdIdentityProvider(name={self.name!r}, url={self._url!r})"

    @property
    def cache_size(self) -> int:
        return len(self._cache)

    async def resolve(self, raw_token: str, logger: logging.Logger) -> PrincipalContext | None:
        # The hit path: one hash, one dict lookup, a coarse clock. Only tokens that
        # passed every check on the miss path are cached, so a hit needs no more.
        if not raw_token or len(raw_token) > self._max_token:
            return None
        token = raw_token.encode()
        key = sha256(token).digest()
        entry = self._cache.get(key)
        if entry is not None:
            now = self._now
            if now is None:
                now = self._read_clock()
            if entry[0] > now:
                return entry[1]
            self._cache.pop(key, None)
        if len(token) > self._max_token:  # multi-byte characters over the byte limit
            return None
        return await self._resolve_miss(key, raw_token, logger)

    def _read_clock(self) -> float:
        """Read the clock; with the default clock, keep it for COARSE_CLOCK_SECONDS."""
        now = self._clock()
        if self._coarse:
            self._now = now
            asyncio.get_running_loop().call_later(COARSE_CLOCK_SECONDS, self._forget_clock)
        return now

    def _forget_clock(self) -> None:
        self._now = None

    async def _resolve_miss(
        self, key: bytes, raw_token: str, logger: logging.Logger
    ) -> PrincipalContext | None:
        flight = self._inflight.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._introspect(key, raw_token, logger))
            self._inflight[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        # shield: a caller that goes away must not cancel the others' introspection.
        return await asyncio.shield(flight)

    def _landed(self, key: bytes, done: asyncio.Future[PrincipalContext | None]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if not done.cancelled():
            done.exception()  # mark retrieved: every waiter may have gone

    async def _introspect(
        self, key: bytes, raw_token: str, logger: logging.Logger
    ) -> PrincipalContext | None:
        # A slot is waited for no longer than a reply: behind a hung lum.id, queued
        # callers would otherwise get their 503 only after everyone ahead timed out.
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise self._unavailable(
                logger, f"no introspection slot free within {self._timeout:g}s"
            ) from None
        try:
            self.introspections += 1
            try:
                response = await self._client.post(self._url, data={"token": raw_token})
            except httpx.TimeoutException:
                raise self._unavailable(logger, f"no reply within {self._timeout:g}s") from None
            except httpx.HTTPError as exc:
                raise self._unavailable(logger, f"{type(exc).__name__}: {exc}") from None
        finally:
            self._slots.release()
        if response.status_code != 200:
            raise self._unavailable(logger, f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise self._unavailable(logger, "reply is not JSON") from None
        try:
            verdict = parse_introspection(body, self._org_id)
        except IntrospectionError as exc:
            raise self._unavailable(logger, str(exc)) from None
        if verdict is None:
            return None
        principal, email, exp = verdict
        if email is not None and self._directory is not None:
            try:
                await self._directory.record(principal.principal_id, email)
            except Exception as exc:  # billing bookkeeping must not fail a login
                logger.warning(
                    "lum.id identity: could not record the email of %s: %s",
                    principal.principal_id,
                    exc,
                )
        self._remember(key, principal, exp)
        return principal

    def _remember(self, key: bytes, principal: PrincipalContext, exp: float | None) -> None:
        if self._max_entries <= 0 or self._ttl <= 0:
            return
        now = self._clock()
        ttl = self._ttl
        if exp is not None:
            ttl = min(ttl, exp - time.time())
            if ttl <= 0:
                return
        cache = self._cache
        while len(cache) >= self._max_entries:
            del cache[next(iter(cache))]
        cache[key] = (now + ttl, principal)

    def _unavailable(self, logger: logging.Logger, reason: str) -> HTTPException:
        logger.warning("lum.id introspection at %s failed: %s", self._url, reason)
        return HTTPException(
            status_code=503,
            detail=f"lum.id is unavailable ({reason}); try again shortly",
            headers=dict(_RETRY_AFTER),
        )

"""lum.id identity: bearer token -> `PrincipalContext` through token introspection.

The request path is a cache hit: hash the token, one dict lookup, a coarse clock
(re-read at most every 50 ms).
A miss makes one `POST {LUM_ID_BASE_URL}/oauth/introspect` on the pooled client
(`lumid_core.introspection`: one deadline for the whole exchange, a capped reply),
shared by every concurrent caller presenting the same token (single flight), with
at most `LUMID_INTROSPECT_CONCURRENCY` introspections in flight at once. The email
lum.id reports goes to the principal directory, which writes it behind the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from hashlib import sha256
from typing import Final

import httpx
from fastapi import HTTPException
from lumid_hooks import PrincipalContext

from .directory import PrincipalDirectory
from .http import LaneTransport, make_http_client
from .introspection import IntrospectionError, Verdict, introspect, parse_introspection
from .settings import LumidSettings

__all__ = [
    "IntrospectionError",
    "LaneTransport",
    "LumIdIdentityProvider",
    "make_http_client",
    "parse_introspection",
]
# LaneTransport and make_http_client live in lumid_core.http; they stay importable
# from here too, where the first version published them.

_RETRY_AFTER: Final = {"Retry-After": "5"}
# Cache hits compare expiries with a copy of the clock at most this old (plus any
# stall of the event loop): a clock read costs about a tenth of a hit.
COARSE_CLOCK_SECONDS: Final = 0.05

type CacheEntry = tuple[float, PrincipalContext]


class _LeaderGone(Exception):
    """The caller introspecting a token went away; its waiters ask again."""


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
        self._max_reply = settings.lumid_max_reply_bytes
        self._client = client
        self._directory = directory
        self._clock = clock
        # Only the default clock is read coarsely; an injected one (tests) every time.
        self._coarse = clock is time.monotonic
        self._now: float | None = None
        # Insertion-ordered: eviction pops the oldest entry in O(1) at any size.
        self._cache: OrderedDict[bytes, CacheEntry] = OrderedDict()
        self._inflight: dict[bytes, asyncio.Future[PrincipalContext | None]] = {}
        self._slots = asyncio.Semaphore(settings.lumid_introspect_concurrency)
        self.introspections = 0  # upstream calls made (diagnostics and tests)

    def __repr__(self) -> str:
        return f"LumIdIdentityProvider(name={self.name!r}, url={self._url!r})"

    @property
    def cache_size(self) -> int:
        """How many verdicts the cache holds."""
        return len(self._cache)

    async def resolve(self, raw_token: str, logger: logging.Logger) -> PrincipalContext | None:
        """The principal a bearer token stands for, or None when lum.id does not vouch for it.

        None for an empty or over-long token (`LUMID_MAX_TOKEN_BYTES`) and for a token
        lum.id reports inactive, expired or without a subject. Raises `HTTPException` 503
        (with `Retry-After`) when lum.id gives no clean verdict: unreachable, timed
        out, no introspection slot free in time, or a malformed reply.
        """
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

    async def ask(self, raw_token: str) -> Verdict:
        """lum.id's verdict on `raw_token`: one introspection, no cache, no slot, no log.

        Raises `IntrospectionError` when lum.id gives no clean verdict (`lumid doctor`
        asks this way too).
        """
        return await introspect(
            self._client,
            self._url,
            raw_token,
            org_id=self._org_id,
            deadline=self._timeout,
            max_bytes=self._max_reply,
        )

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
        # Single flight: the first caller of a token introspects in its own task (no
        # task hop); later callers wait for its result. Should the first caller go
        # away mid-flight, the others are told to ask again, and one of them leads.
        while (flight := self._inflight.get(key)) is not None:
            try:
                # shield: a waiter that goes away must not cancel the shared result.
                return await asyncio.shield(flight)
            except _LeaderGone:
                continue
        flight = asyncio.get_running_loop().create_future()
        self._inflight[key] = flight
        try:
            principal = await self._introspect(key, raw_token, logger)
        except asyncio.CancelledError:
            self._landed(key, flight, _LeaderGone())
            raise
        except BaseException as exc:
            self._landed(key, flight, exc)
            raise
        self._landed(key, flight, None, principal)
        return principal

    def _landed(
        self,
        key: bytes,
        flight: asyncio.Future[PrincipalContext | None],
        exc: BaseException | None,
        principal: PrincipalContext | None = None,
    ) -> None:
        if self._inflight.get(key) is flight:
            del self._inflight[key]
        if exc is None:
            flight.set_result(principal)
        else:
            flight.set_exception(exc)
            flight.exception()  # mark retrieved: there may be no other waiter

    async def _introspect(
        self, key: bytes, raw_token: str, logger: logging.Logger
    ) -> PrincipalContext | None:
        # A slot is waited for no longer than a reply: behind a hung lum.id, queued
        # callers would otherwise get their 503 only after everyone ahead timed out.
        try:
            if self._slots.locked():
                async with asyncio.timeout(self._timeout):
                    await self._slots.acquire()
            else:
                await self._slots.acquire()  # free: returns without waiting
        except TimeoutError:
            raise self._unavailable(
                logger, f"no introspection slot free within {self._timeout:g}s"
            ) from None
        try:
            self.introspections += 1
            verdict = await self.ask(raw_token)
        except IntrospectionError as exc:
            raise self._unavailable(logger, str(exc)) from None
        except Exception as exc:  # nothing lum.id sends may become a 500
            raise self._unavailable(logger, f"unexpected {type(exc).__name__}") from None
        finally:
            self._slots.release()
        principal = verdict.principal
        if principal is None:
            return None
        if verdict.email is not None and self._directory is not None:
            try:
                await self._directory.record(principal.principal_id, verdict.email)
            except Exception as exc:  # billing bookkeeping must not fail a login
                logger.warning(
                    "lum.id identity: could not record the email of %s: %s",
                    principal.principal_id,
                    exc,
                )
        self._remember(key, principal, verdict.exp)
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
            cache.popitem(last=False)
        cache[key] = (now + ttl, principal)

    def _unavailable(self, logger: logging.Logger, reason: str) -> HTTPException:
        logger.warning("lum.id introspection at %s failed: %s", self._url, reason)
        return HTTPException(
            status_code=503,
            detail=f"lum.id is unavailable ({reason}); try again shortly",
            headers=dict(_RETRY_AFTER),
        )

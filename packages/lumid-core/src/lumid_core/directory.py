"""Who is who for billing: principal_id -> email, as last seen by identity.

Identity records the email of every principal it resolves; billing reads it back
to address Runmesh, which knows users only by email. The SQLite directory keeps it
across restarts, so rows for principals not seen since the last restart are billed.
`WriteBehindDirectory` wraps any directory so that recording never waits for the
disk: the request goes on, the email is written behind it (see its docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from itertools import islice
from typing import Final, Protocol, runtime_checkable

import aiosqlite

from .db import Database
from .outbox import RateLimitedLog

__all__ = [
    "MemoryPrincipalDirectory",
    "PrincipalDirectory",
    "SqlitePrincipalDirectory",
    "WriteBehindDirectory",
]

_UPSERT: Final = (
    "INSERT INTO principals (principal_id, email, last_seen_at) VALUES (?, ?, ?) "
    "ON CONFLICT (principal_id) DO UPDATE SET email = excluded.email, "
    "last_seen_at = excluded.last_seen_at"
)
# Refresh last_seen_at at most this often per principal (a write costs an fsync).
_REFRESH_SECONDS: Final = 3600.0
# Writes handed to the wrapped directory at once (one group commit on SQLite).
_BATCH: Final = 512
_RETRY_SECONDS: Final = 1.0
# A batch gathers for this long: one transaction per ~100 ms of first logins, not
# one per login (each costs the event loop several thread hand-offs and an fsync).
_LINGER_SECONDS: Final = 0.1
# How long `email_for` waits for a queued email to become durable before answering.
_DURABLE_WAIT_SECONDS: Final = 1.0

log = logging.getLogger("lumid_core.directory")


@runtime_checkable
class PrincipalDirectory(Protocol):
    """Where identity records, and billing reads back, each principal's email."""

    async def record(self, principal_id: str, email: str) -> None:
        """Remember (durably, where the implementation can) the principal's email."""
        ...

    async def email_for(self, principal_id: str) -> str | None:
        """The principal's last known email, or None."""
        ...


class MemoryPrincipalDirectory:
    """A process-local directory (tests, or hosts with no billing)."""

    def __init__(self) -> None:
        self._emails: dict[str, str] = {}

    async def record(self, principal_id: str, email: str) -> None:
        """Remember the principal's email in this process's memory only."""
        self._emails[principal_id] = email

    async def email_for(self, principal_id: str) -> str | None:
        """The email last recorded in this process for the principal, or None."""
        return self._emails.get(principal_id)


class SqlitePrincipalDirectory:
    """The `principals` table of the plugin database; `record` returns once durable.

    Servers use it through `WriteBehindDirectory`, which also skips rewriting an
    email that has not changed (a bounded memo).
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, principal_id: str, email: str) -> None:
        """Upsert the principal's email and last-seen time; returns once it is durable."""
        await self._db.write(_UPSERT, (principal_id, email, time.time()))

    async def record_many(self, emails: Mapping[str, str]) -> None:
        """Record every principal -> email of `emails` in one transaction (all or none)."""
        now = time.time()
        rows = [(principal_id, email, now) for principal_id, email in emails.items()]

        async def work(conn: aiosqlite.Connection) -> None:
            await conn.executemany(_UPSERT, rows)

        await self._db.transaction(work)

    async def email_for(self, principal_id: str) -> str | None:
        """The principal's email from the `principals` table, or None if never recorded."""
        row = self._db.read_one(
            "SELECT email FROM principals WHERE principal_id = ?", (principal_id,)
        )
        return None if row is None else str(row[0])


class WriteBehindDirectory:
    """Any `PrincipalDirectory` whose `record` never waits: emails are written behind.

    `record` queues the email and returns; one background task hands the queue to
    the wrapped directory in batches gathered over 100 ms (one `record_many` call
    when the directory has one: on SQLite, one transaction) and retries a failed
    batch every second. `email_for` of a queued email writes it at once and waits
    (at most a second) until it is durable, then answers it: a billing row emitted
    right after a first login gets its email, and keeps it across a crash; only
    the login itself never waits. At most `max_pending`
    principals wait: beyond that a new one's email is dropped with a (rate-limited)
    warning, and recorded at its next login instead. A memo of at most `memo_size`
    principals skips rewriting an unchanged email for an hour. `aclose()` (the
    runtime's shutdown) writes what is queued. An email still queued when the
    process is killed is lost; billing then holds that principal's rows until its
    next login, as for a principal never seen (nothing is billed wrongly or lost).
    """

    def __init__(
        self,
        inner: PrincipalDirectory,
        *,
        max_pending: int = 10_000,
        memo_size: int = 10_000,
        logger: logging.Logger = log,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner
        self._max_pending = max(1, max_pending)
        self._memo_size = max(0, memo_size)
        self._clock = clock
        self._warn = RateLimitedLog(logger, 60.0)
        self._pending: dict[str, str] = {}
        self._writing: dict[str, str] = {}
        self._memo: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()  # someone waits: write without the linger
        self._batch_done = asyncio.Event()  # set (and replaced) after each batch
        self._closing = False
        self.dropped = 0
        """Emails dropped because the queue was full (diagnostics and tests)."""

    def __repr__(self) -> str:
        return f"WriteBehindDirectory({self._inner!r}, pending={self.pending})"

    @property
    def pending(self) -> int:
        """Principals whose email is queued or being written."""
        return len(self._pending) + len(self._writing)

    async def record(self, principal_id: str, email: str) -> None:
        """Queue the principal's email; returns at once (never waits for the disk)."""
        if self._pending.get(principal_id, self._writing.get(principal_id)) == email:
            return
        seen = self._memo.get(principal_id)
        if seen is not None and seen[0] == email and self._clock() - seen[1] < _REFRESH_SECONDS:
            return
        if principal_id not in self._pending and len(self._pending) >= self._max_pending:
            self.dropped += 1
            self._warn.warning(
                "overflow",
                "principal directory: %d emails are waiting to be written; the email of "
                "%s is dropped and recorded at its next login (LUMID_EMAIL_QUEUE_SIZE)",
                len(self._pending),
                principal_id,
            )
            return
        self._pending[principal_id] = email
        self._ensure_draining()

    async def email_for(self, principal_id: str) -> str | None:
        """The newest email: a queued one (made durable first), else the wrapped one's.

        A caller asking is about to rely on the email (billing addresses a row with
        it), so a queued email is written now, without the batching delay; past
        `_DURABLE_WAIT_SECONDS` (a stalled database) it is answered all the same.
        """
        email = self._pending.get(principal_id) or self._writing.get(principal_id)
        if email is None:
            return await self._inner.email_for(principal_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_DURABLE_WAIT_SECONDS):
                while principal_id in self._pending or principal_id in self._writing:
                    self._hurry.set()
                    self._ensure_draining()
                    await self._batch_done.wait()
        return email

    def _ensure_draining(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def flush(self) -> None:
        """Return once everything queued so far has been written (or has failed)."""
        while self._pending or (self._task is not None and not self._task.done()):
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._drain())
            await asyncio.shield(self._task)

    async def aclose(self) -> None:
        """Write what is queued, once, without retrying (shutdown)."""
        self._closing = True
        await self.flush()

    async def _drain(self) -> None:
        while self._pending:
            if self._closing or self._hurry.is_set() or len(self._pending) >= _BATCH:
                await asyncio.sleep(0)  # let every record of this loop turn join
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_LINGER_SECONDS):
                        await self._hurry.wait()
            self._hurry.clear()
            batch = dict(islice(self._pending.items(), _BATCH))
            for principal_id in batch:
                del self._pending[principal_id]
            self._writing = batch
            try:
                results = await self._write(batch)
            finally:
                self._writing = {}
            failed = self._settle(batch, results)
            done, self._batch_done = self._batch_done, asyncio.Event()
            done.set()
            if failed and not self._closing:
                await asyncio.sleep(_RETRY_SECONDS)

    async def _write(self, batch: dict[str, str]) -> list[BaseException | None]:
        """Hand `batch` to the wrapped directory: one call when it can take a batch."""
        many: Callable[[Mapping[str, str]], Awaitable[None]] | None = getattr(
            self._inner, "record_many", None
        )
        if many is not None:
            try:
                await many(batch)
            except Exception as exc:
                return [exc] * len(batch)
            return [None] * len(batch)
        return await asyncio.gather(
            *(self._inner.record(p, e) for p, e in batch.items()), return_exceptions=True
        )

    def _settle(self, batch: dict[str, str], results: list[BaseException | None]) -> int:
        """Memo the written emails; queue the failed ones again. Returns the failures."""
        now = self._clock()
        failed: list[tuple[str, BaseException]] = []
        for (principal_id, email), result in zip(batch.items(), results, strict=True):
            if isinstance(result, BaseException):
                failed.append((principal_id, result))
                if not self._closing:
                    self._pending.setdefault(principal_id, email)
            elif self._memo_size:
                self._memo[principal_id] = (email, now)
                self._memo.move_to_end(principal_id)
                while len(self._memo) > self._memo_size:
                    self._memo.popitem(last=False)
        if failed:
            principal_id, exc = failed[0]
            self._warn.warning(
                "failed",
                "principal directory: could not write the email of %d principal(s) (%s: %s)%s",
                len(failed),
                principal_id,
                exc,
                "; they are recorded at their next login" if self._closing else "; retrying",
            )
        return len(failed)

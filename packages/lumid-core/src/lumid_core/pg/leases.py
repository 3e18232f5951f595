"""`Leases`: the outbox rows one replica holds, renewed while it lives, handed back on close."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Final

from .database import NOW, PgDatabase

__all__ = ["Leases"]

_RENEW: Final = (
    f"UPDATE lumid_outbox SET lease_until = {NOW} + $3 "  # noqa: S608 (constant SQL)
    "WHERE sink = $1 AND claimed_by = $2 AND state = 'pending' AND key = ANY($4::text[])"
)
_RELEASE_CLAIMS: Final = (
    "UPDATE lumid_outbox SET claimed_by = NULL, lease_until = 0 "
    "WHERE sink = $1 AND claimed_by = $2 AND state = 'pending'"
)
# A key this replica just marked is not claimed again by it for this long: the worker
# still counts it as its own until its attempt has wound down, and would skip it.
_REMARK_GRACE_SECONDS: Final = 2.0


class Leases:
    """The leases one replica holds on one sink's rows (`claimed_by` = its replica id).

    The outbox reports the rows it leased (`took`) and marked (`marked`); this keeps
    the leases of rows taken and not yet marked alive, renewing them every third of
    `lease_seconds` in a background task that runs only while some are held.
    """

    def __init__(self, db: PgDatabase, sink: str, lease_seconds: float) -> None:
        self._db = db
        self._pool = db.pool
        self._sink = sink
        self.lease_seconds = lease_seconds
        self.closed = False
        self._renewer: asyncio.Task[None] | None = None
        self._out: dict[str, float] = {}  # key -> when leased here (monotonic), until marked
        self._recent: dict[str, float] = {}  # key -> when marked (monotonic)

    def took(self, keys: Iterable[str]) -> None:
        """`keys` are leased to this replica now: keep their leases until marked."""
        mono = time.monotonic()
        for key in keys:
            self._out[key] = mono
        if self._out and not self.closed and (self._renewer is None or self._renewer.done()):
            self._renewer = asyncio.create_task(self._renew(), name=f"{self._sink}-leases")

    def marked(self, key: str, *, pending: bool) -> None:
        """`key`'s outcome is being recorded: its lease drops (a pending one stays recent)."""
        self._out.pop(key, None)
        if pending:  # only a retried row can be claimed again
            self._recent[key] = time.monotonic()

    def recently_marked(self) -> list[str]:
        """Keys this replica marked within the grace period: a claim skips them."""
        mono = time.monotonic()
        self._recent = {k: t for k, t in self._recent.items() if mono - t < _REMARK_GRACE_SECONDS}
        return list(self._recent)

    async def _renew(self) -> None:
        """While this replica lives, keep the leases on the rows it holds and has not marked.

        A row waiting in this replica's queue (or out on a slow delivery) is not taken
        by another replica; a replica that dies stops renewing, and its leases end. A
        row held for more than ten leases is let go (its lease ends; any replica, this
        one included, claims it again), so nothing is held forever.
        """
        while not self.closed:
            await asyncio.sleep(self.lease_seconds / 3)
            if self._pool.is_closing():
                return
            mono = time.monotonic()
            self._out = {k: t for k, t in self._out.items() if mono - t < 10 * self.lease_seconds}
            if not self._out:
                return  # nothing held: the next add or claim starts a new renewer
            with contextlib.suppress(Exception):  # the next round tries again
                await self._pool.execute(
                    _RENEW, self._sink, self._db.replica_id, self.lease_seconds, list(self._out)
                )

    async def aclose(self) -> None:
        """Stop renewing and hand back every row this replica holds on the sink."""
        self.closed = True
        self._out.clear()
        task, self._renewer = self._renewer, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._pool.execute(_RELEASE_CLAIMS, self._sink, self._db.replica_id)

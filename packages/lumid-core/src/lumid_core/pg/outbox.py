"""The durable outbox on PostgreSQL: one shared queue, each row delivered once across replicas.

Same method names and row semantics as `lumid_core.outbox.Outbox` (SQLite). What
differs is claiming: `due()` takes rows with `SELECT ... FOR UPDATE SKIP LOCKED` and
writes a lease (`claimed_by`, `lease_until`, on the server's clock) in the same
statement, so two replicas never take the same row; a replica that dies
mid-delivery holds its rows only until the lease ends (a live replica renews its
leases), then any replica takes them. `mark()` records the outcome and drops the
lease; `aclose()` hands back what a stopping replica still holds.

`pending_count()` and `next_due_at()` are synchronous in the SQLite outbox (point
reads the worker makes in the event loop); here they answer from this replica's
snapshot, refreshed by every `due()` (two bounded index reads) and adjusted by its
own outcomes. `count_pending()` and `earliest_due()` ask the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from lumid_core.outbox import (
    STATES,
    Dead,
    Delivered,
    Held,
    NewEntry,
    OutboxEntry,
    OutboxStats,
    Outcome,
    Retry,
)

from .database import NOW, PgDatabase

__all__ = ["PgOutbox"]

_COLUMNS: Final = (
    "sink, key, state, attempts, created_at, updated_at, reason, payload, hold_on, next_attempt_at"
)
_ADD: Final = (
    "INSERT INTO lumid_outbox (sink, key, state, attempts, created_at, updated_at, "
    "next_attempt_at, hold_on, reason, payload) "
    "SELECT $1::text, k, s, 0, $2::float8, $2::float8, $2::float8, h, r, p "
    "FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) "
    "WITH ORDINALITY AS t(k, s, h, r, p, n) "
    "ORDER BY n ON CONFLICT (sink, key) DO NOTHING"
)
_CLAIM: Final = (
    "WITH c AS (SELECT sink, key FROM lumid_outbox WHERE sink = $1 AND state = 'pending' "  # noqa: S608 (constant SQL)
    f"AND next_attempt_at <= $2 AND lease_until < {NOW} AND NOT (key = ANY($6::text[])) "
    "ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) "
    f"UPDATE lumid_outbox o SET claimed_by = $4, lease_until = {NOW} + $5 "
    "FROM c WHERE o.sink = c.sink AND o.key = c.key "
    "RETURNING o.sink, o.key, o.state, o.attempts, o.created_at, o.updated_at, o.reason, "
    "o.payload, o.hold_on, o.next_attempt_at"
)
# Pending rows, and when the next one can be claimed (its schedule or its lease's end).
# Both bounded: a count up to `_COUNT_CAP` and an index lookup (lumid_outbox_next), so a
# claim costs the same with 10 or 10 million rows waiting.
_COUNT_CAP: Final = 1000
_SNAPSHOT: Final = (
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM lumid_outbox WHERE sink = $1 "  # noqa: S608 (constant)
    f"AND state = 'pending' LIMIT {_COUNT_CAP + 1}) AS capped), "
    "(SELECT GREATEST(next_attempt_at, lease_until) FROM lumid_outbox WHERE sink = $1 "
    "AND state = 'pending' ORDER BY GREATEST(next_attempt_at, lease_until) LIMIT 1)"
)
_COUNT: Final = "SELECT count(*) FROM lumid_outbox WHERE sink = $1 AND state = 'pending'"
_RENEW: Final = (
    f"UPDATE lumid_outbox SET lease_until = {NOW} + $3 "  # noqa: S608 (constant SQL)
    "WHERE sink = $1 AND claimed_by = $2 AND state = 'pending' AND key = ANY($4::text[])"
)
# A key this replica just marked is not claimed again by it for this long: the worker
# still counts it as its own until its attempt has wound down, and would skip it.
_REMARK_GRACE_SECONDS: Final = 2.0
_RELEASE_CLAIMS: Final = (
    "UPDATE lumid_outbox SET claimed_by = NULL, lease_until = 0 "
    "WHERE sink = $1 AND claimed_by = $2 AND state = 'pending'"
)
_MARK: Final = (
    "UPDATE lumid_outbox SET state = $1, attempts = attempts + 1, updated_at = $2, "
    "next_attempt_at = $3, hold_on = $4, reason = $5, claimed_by = NULL, lease_until = 0 "
    "WHERE sink = $6 AND key = $7 AND state = 'pending'"
)


def _entry(row: Any) -> OutboxEntry:
    try:
        payload = json.loads(row[7])
    except ValueError:
        payload = {"unreadable": str(row[7])[:200]}
    return OutboxEntry(
        sink=row[0],
        key=row[1],
        state=row[2],
        attempts=int(row[3]),
        created_at=float(row[4]),
        updated_at=float(row[5]),
        reason=row[6],
        payload=payload if isinstance(payload, dict) else {"value": payload},
        hold_on=row[8],
        next_attempt_at=float(row[9]),
    )


def _count(status: str) -> int:
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


class PgOutbox:
    """The rows of one sink in the shared `lumid_outbox` table."""

    def __init__(self, db: PgDatabase, sink: str, *, lease_seconds: float = 60.0) -> None:
        if not sink:
            raise ValueError("an outbox needs a sink name")
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.db = db
        self.sink = sink
        self.lease_seconds = lease_seconds
        self._pool = db.pool
        # None until the first look: never report "nothing pending" before looking.
        self._pending: int | None = None
        self._next_due: float | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._closed = False
        self._snapshots = 0  # bumped by every snapshot taken (see `mark`)
        self._out: dict[str, float] = {}  # key -> when handed out (monotonic), until marked
        self._recent: dict[str, float] = {}  # key -> when marked (monotonic)

    def __repr__(self) -> str:
        return f"PgOutbox({self.sink!r}, {self.db!r})"

    # -- adding -----------------------------------------------------------------

    async def add(self, entries: Sequence[NewEntry], *, now: float | None = None) -> None:
        """Add `entries` in one statement (committed when this returns); a key already
        present, or repeated in `entries`, keeps its first row."""
        if not entries:
            return
        ts = time.time() if now is None else now
        keys, states, holds, reasons, payloads = [], [], [], [], []
        for e in entries:
            keys.append(e.key)
            states.append("dead" if e.dead else ("held" if e.hold_on is not None else "pending"))
            holds.append(e.hold_on)
            reasons.append(e.reason)
            payloads.append(json.dumps(dict(e.payload), separators=(",", ":"), sort_keys=True))
        await self._pool.execute(_ADD, self.sink, ts, keys, states, holds, reasons, payloads)
        self._bump(sum(1 for s in states if s == "pending"), ts)

    # -- the delivery side ------------------------------------------------------

    async def due(
        self, *, now: float | None = None, limit: int = 256, skip: int = 0
    ) -> list[OutboxEntry]:
        """Claim pending rows whose next attempt is due, oldest schedule first.

        Each returned row is leased to this replica for `lease_seconds`, renewed
        every third of that while the replica lives: no other replica gets it until
        `mark()`, `aclose()` or the lease's end after this process died. `skip` is
        accepted for interface parity; claimed rows are never returned twice anyway.
        """
        if self._closed:
            return []
        ts = time.time() if now is None else now
        mono = time.monotonic()
        self._recent = {k: t for k, t in self._recent.items() if mono - t < _REMARK_GRACE_SECONDS}
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                _CLAIM,
                self.sink,
                ts,
                int(limit),
                self.db.replica_id,
                self.lease_seconds,
                list(self._recent),
            )
            snap = await conn.fetchrow(_SNAPSHOT, self.sink)
        self._remember(snap)
        for r in rows:
            self._out[r[1]] = mono
        if rows and (self._renewer is None or self._renewer.done()):
            self._renewer = asyncio.create_task(self._renew(), name=f"{self.sink}-leases")
        return sorted((_entry(r) for r in rows), key=lambda e: e.next_attempt_at)

    async def _renew(self) -> None:
        """While this replica lives, keep the leases on the rows it handed out and has
        not marked yet.

        A row waiting in this replica's queue (or out on a slow delivery) is not taken
        by another replica; a replica that dies stops renewing, and its leases end. A
        row out for more than ten leases is let go (its lease ends; any replica, this
        one included, claims it again), so nothing is held forever.
        """
        while not self._closed:
            await asyncio.sleep(self.lease_seconds / 3)
            if self._pool.is_closing():
                return
            mono = time.monotonic()
            self._out = {k: t for k, t in self._out.items() if mono - t < 10 * self.lease_seconds}
            if not self._out:
                return  # nothing held: the next claim starts a new renewer
            with contextlib.suppress(Exception):  # the next round tries again
                await self._pool.execute(
                    _RENEW, self.sink, self.db.replica_id, self.lease_seconds, list(self._out)
                )

    async def aclose(self) -> None:
        """Stop renewing and hand back the rows this replica holds (after its worker stops)."""
        self._closed = True
        self._out.clear()
        task, self._renewer = self._renewer, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._pool.execute(_RELEASE_CLAIMS, self.sink, self.db.replica_id)

    def _bump(self, added: int, due_at: float) -> None:
        if added and self._pending is not None:
            self._pending += added
            self._next_due = due_at if self._next_due is None else min(self._next_due, due_at)

    def _remember(self, snap: Any) -> None:
        self._snapshots += 1
        if snap is not None:
            self._pending = int(snap[0])
            self._next_due = None if snap[1] is None else float(snap[1])

    def next_due_at(self) -> float | None:
        """When the earliest pending row is due, as of this replica's last claim or mark."""
        return self._next_due

    def pending_count(self) -> int:
        """Pending rows, as of this replica's last claim, less its outcomes since.

        Exact up to 1,000 (1,001 means "more"); before the first look it answers 1,
        so a drain never ends before looking. `count_pending` asks the server.
        """
        return 1 if self._pending is None else self._pending

    async def count_pending(self) -> int:
        """Pending rows of this sink on the server, now (exact)."""
        return int(await self._pool.fetchval(_COUNT, self.sink))

    async def earliest_due(self) -> float | None:
        """When the earliest pending row is due, on the server, now."""
        snap = await self._pool.fetchrow(_SNAPSHOT, self.sink)
        self._remember(snap)
        return self._next_due

    async def mark(self, key: str, outcome: Outcome, *, next_attempt_at: float = 0.0) -> None:
        """Record the outcome of one attempt on a pending row and drop its lease."""
        now = time.time()
        match outcome:
            case Delivered():
                args: tuple[Any, ...] = ("delivered", now, now, None, None)
            case Retry(reason=reason):
                args = ("pending", now, next_attempt_at, None, reason)
            case Dead(reason=reason):
                args = ("dead", now, now, None, reason)
            case Held(hold_on=hold_on, reason=reason):
                args = ("held", now, now, hold_on, reason)
        seen = self._snapshots
        self._out.pop(key, None)
        if args[0] == "pending":  # only a retried row can be claimed again
            self._recent[key] = time.monotonic()
        status = await self._pool.execute(_MARK, *args, self.sink, key)
        # A snapshot taken while this ran may already leave the row out: then do not
        # count it out again (over-counting only delays a drain until the next claim).
        if args[0] != "pending" and _count(status) and self._pending and seen == self._snapshots:
            self._pending -= 1

    async def held_on(self) -> list[str]:
        """The distinct `hold_on` values of held rows."""
        rows = await self._pool.fetch(
            "SELECT DISTINCT hold_on FROM lumid_outbox WHERE sink = $1 AND state = 'held' "
            "AND hold_on IS NOT NULL",
            self.sink,
        )
        return [str(r[0]) for r in rows]

    async def release(self, hold_on: Iterable[str]) -> int:
        """Held rows waiting on any of `hold_on` become pending now; returns how many.

        Whichever replica learns the email releases the rows: the table is shared.
        """
        values = list(dict.fromkeys(hold_on))
        if not values:
            return 0
        now = time.time()
        status = await self._pool.execute(
            "UPDATE lumid_outbox SET state = 'pending', next_attempt_at = $1, updated_at = $1, "
            "hold_on = NULL WHERE sink = $2 AND state = 'held' AND hold_on = ANY($3::text[])",
            now,
            self.sink,
            values,
        )
        moved = _count(status)
        self._bump(moved, now)
        return moved

    async def prune_delivered(self, older_than_seconds: float) -> int:
        """Forget delivered rows last updated more than `older_than_seconds` ago."""
        cutoff = time.time() - older_than_seconds
        status = await self._pool.execute(
            "DELETE FROM lumid_outbox WHERE sink = $1 AND state = 'delivered' AND updated_at < $2",
            self.sink,
            cutoff,
        )
        return _count(status)

    # -- inspection and replay (the CLI) ----------------------------------------

    async def stats(self) -> OutboxStats:
        """Row counts per state and the age of the oldest pending row."""
        rows = await self._pool.fetch(
            "SELECT state, count(*), min(created_at) FROM lumid_outbox WHERE sink = $1 "
            "GROUP BY state",
            self.sink,
        )
        counts = {str(r[0]): int(r[1]) for r in rows}
        oldest = next((r[2] for r in rows if r[0] == "pending"), None)
        return OutboxStats(
            pending=counts.get("pending", 0),
            held=counts.get("held", 0),
            delivered=counts.get("delivered", 0),
            dead=counts.get("dead", 0),
            oldest_pending_age_seconds=(
                None if oldest is None else max(0.0, time.time() - float(oldest))
            ),
        )

    async def entries(self, *, state: str | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Rows of this sink (of one state when given), oldest first."""
        if state is not None and state not in STATES:
            raise ValueError(f"unknown outbox state {state!r}; expected one of {', '.join(STATES)}")
        if state is None:
            rows = await self._pool.fetch(
                f"SELECT {_COLUMNS} FROM lumid_outbox WHERE sink = $1 "  # noqa: S608 (fixed column names)
                "ORDER BY created_at, key LIMIT $2",
                self.sink,
                max(0, int(limit)),
            )
        else:
            rows = await self._pool.fetch(
                f"SELECT {_COLUMNS} FROM lumid_outbox WHERE sink = $1 AND state = $2 "  # noqa: S608 (fixed column names)
                "ORDER BY created_at, key LIMIT $3",
                self.sink,
                state,
                max(0, int(limit)),
            )
        return [_entry(r) for r in rows]

    async def entry(self, key: str) -> OutboxEntry | None:
        """One row by key, or None."""
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM lumid_outbox WHERE sink = $1 AND key = $2",  # noqa: S608 (fixed column names)
            self.sink,
            key,
        )
        return None if row is None else _entry(row)

    async def retry(self, *, key: str | None = None, all_dead: bool = False) -> int:
        """Replay dead letters: dead -> pending, due now. Returns the rows moved.

        Give exactly one of `key` (one row) or `all_dead=True`.
        """
        if (key is None) == (not all_dead):
            raise ValueError("retry needs exactly one of key=... or all_dead=True")
        now = time.time()
        sql = (
            "UPDATE lumid_outbox SET state = 'pending', next_attempt_at = $1, updated_at = $1, "
            "attempts = 0, claimed_by = NULL, lease_until = 0 "
            "WHERE sink = $2 AND state = 'dead'"
        )
        if key is None:
            status = await self._pool.execute(sql, now, self.sink)
        else:
            status = await self._pool.execute(sql + " AND key = $3", now, self.sink, key)
        moved = _count(status)
        self._bump(moved, now)
        return moved

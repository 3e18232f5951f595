"""The durable outbox on PostgreSQL: one shared queue, each row delivered once across replicas.

An `OutboxStore` (`lumid_core.outbox.store`), like the SQLite `Outbox`. What differs
is ownership: a row is leased (`claimed_by`, `lease_until`, on the server's clock) to
one replica at a time. `add()` inserts its pending rows already leased to the writing
replica, so a row the sink hands straight to its own worker is owned by it; `due()`
claims further rows with `SELECT ... FOR UPDATE SKIP LOCKED` (unleased ones, or ones
this replica already holds), so two replicas never take the same row. A live replica
renews the leases of rows it holds and has not marked; one that dies mid-delivery
holds its rows only until the lease ends, then any replica takes them (the leases
are kept by `leases.Leases`). `mark()` / `mark_many()` record outcomes and drop the
lease; `aclose()` hands back what a stopping replica still holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import Final

from lumid_core.outbox import NewEntry, OutboxEntry, OutboxStats, Outcome
from lumid_core.outbox.rows import (
    COLUMNS,
    SinkRows,
    check_retry,
    check_state,
    entry_of,
    outcome_columns,
    payload_text,
    stats_of,
)

from .database import NOW, PgDatabase, row_count
from .leases import Leases

__all__ = ["PgOutbox"]

# Pending rows start leased to the writing replica ($8 for $9 seconds): the sink hands
# them to its own worker without a claim, and no other replica may take them meanwhile.
_ADD: Final = (
    "INSERT INTO lumid_outbox (sink, key, state, attempts, created_at, updated_at, "  # noqa: S608 (constant SQL)
    "next_attempt_at, hold_on, reason, payload, claimed_by, lease_until) "
    "SELECT $1::text, k, s, 0, $2::float8, $2::float8, $2::float8, h, r, p, "
    "CASE WHEN s = 'pending' THEN $8::text END, "
    f"CASE WHEN s = 'pending' THEN {NOW} + $9::float8 ELSE 0 END "
    "FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) "
    "WITH ORDINALITY AS t(k, s, h, r, p, n) "
    "ORDER BY n ON CONFLICT (sink, key) DO NOTHING RETURNING key, state"
)
_CLAIM: Final = (
    "WITH c AS (SELECT sink, key FROM lumid_outbox WHERE sink = $1 AND state = 'pending' "  # noqa: S608 (constant SQL)
    f"AND next_attempt_at <= $2 AND (lease_until < {NOW} OR claimed_by = $4) "
    "AND NOT (key = ANY($6::text[])) "
    "ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) "
    f"UPDATE lumid_outbox o SET claimed_by = $4, lease_until = {NOW} + $5 "
    "FROM c WHERE o.sink = c.sink AND o.key = c.key "
    "RETURNING o.sink, o.key, o.state, o.attempts, o.created_at, o.updated_at, o.reason, "
    "o.payload, o.hold_on, o.next_attempt_at"
)
# When the next pending row can be claimed (its schedule or its lease's end): one
# index lookup (lumid_outbox_next), the same cost with 10 or 10 million rows waiting.
_NEXT: Final = (
    "SELECT GREATEST(next_attempt_at, lease_until) FROM lumid_outbox WHERE sink = $1 "
    "AND state = 'pending' ORDER BY GREATEST(next_attempt_at, lease_until) LIMIT 1"
)
_COUNT: Final = "SELECT count(*) FROM lumid_outbox WHERE sink = $1 AND state = 'pending'"
_MARK_MANY: Final = (
    "UPDATE lumid_outbox o SET state = t.s, attempts = o.attempts + 1, updated_at = $2, "
    "next_attempt_at = t.n, hold_on = t.h, reason = t.r, claimed_by = NULL, lease_until = 0 "
    "FROM unnest($3::text[], $4::text[], $5::float8[], $6::text[], $7::text[]) "
    "AS t(k, s, n, h, r) WHERE o.sink = $1 AND o.key = t.k AND o.state = 'pending'"
)


class PgOutbox(SinkRows[PgDatabase]):
    """The rows of one sink in the shared `lumid_outbox` table (an `OutboxStore`)."""

    def __init__(self, db: PgDatabase, sink: str, *, lease_seconds: float = 60.0) -> None:
        super().__init__(db, sink)
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.lease_seconds = lease_seconds
        self._pool = db.pool
        self._leases = Leases(db, sink, lease_seconds)

    # -- adding -----------------------------------------------------------------

    async def add(self, entries: Sequence[NewEntry], *, now: float | None = None) -> int:
        """Add `entries` in one statement (committed on return); returns the rows inserted.

        A key already present, or repeated in `entries`, keeps its first row. The
        pending ones are leased to this replica (renewed while it lives), so the sink
        may hand them to this replica's worker without a claim.
        """
        if not entries:
            return 0
        ts = time.time() if now is None else now
        keys, states, holds, reasons, payloads = [], [], [], [], []
        for e in entries:
            keys.append(e.key)
            states.append(e.state)
            holds.append(e.hold_on)
            reasons.append(e.reason)
            payloads.append(payload_text(e.payload))
        rows = await self._pool.fetch(
            _ADD,
            self._sink,
            ts,
            keys,
            states,
            holds,
            reasons,
            payloads,
            self.db.replica_id,
            self.lease_seconds,
        )
        self._leases.took(r[0] for r in rows if r[1] == "pending")
        return len(rows)

    # -- the delivery side ------------------------------------------------------

    async def due(
        self, *, now: float | None = None, limit: int = 256, skip: int = 0
    ) -> list[OutboxEntry]:
        """Claim pending rows whose next attempt is due, oldest schedule first.

        Each returned row is leased to this replica for `lease_seconds`, renewed
        every third of that while the replica lives: no other replica gets it until
        `mark()`, `aclose()` or the lease's end after this process died. Rows this
        replica already holds (e.g. added here) are returned too; `skip` is accepted
        for interface parity.
        """
        if self._leases.closed:
            return []
        ts = time.time() if now is None else now
        rows = await self._pool.fetch(
            _CLAIM,
            self._sink,
            ts,
            int(limit),
            self.db.replica_id,
            self.lease_seconds,
            self._leases.recently_marked(),
        )
        self._leases.took(r[1] for r in rows)
        return sorted((entry_of(r) for r in rows), key=lambda e: e.next_attempt_at)

    async def aclose(self) -> None:
        """Stop renewing and hand back the rows this replica holds (after its worker stops)."""
        await self._leases.aclose()

    async def next_due_at(self) -> float | None:
        """When the earliest pending row can be claimed (its schedule or its lease's end)."""
        value = await self._pool.fetchval(_NEXT, self._sink)
        return None if value is None else float(value)

    async def pending_count(self) -> int:
        """Pending rows of this sink on the server, now (every replica's)."""
        return int(await self._pool.fetchval(_COUNT, self._sink))

    def mark(
        self, key: str, outcome: Outcome, *, next_attempt_at: float = 0.0
    ) -> Awaitable[object]:
        """Record the outcome of one attempt on a pending row and drop its lease.

        The statement is sent when this is called; await the result for durability.
        """
        return self.mark_many([(key, outcome, next_attempt_at)])

    def mark_many(self, marks: Sequence[tuple[str, Outcome, float]]) -> Awaitable[object]:
        """Record many outcomes `(key, outcome, next_attempt_at)` in one statement.

        Their leases drop; the statement is sent when this is called.
        """
        now = time.time()
        keys: list[str] = []
        states: list[str] = []
        nexts: list[float] = []
        holds: list[str | None] = []
        reasons: list[str | None] = []
        for key, outcome, next_at in marks:
            state, at, hold, reason = outcome_columns(outcome, now, next_at)
            keys.append(key)
            states.append(state)
            nexts.append(at)
            holds.append(hold)
            reasons.append(reason)
            self._leases.marked(key, pending=state == "pending")
        return asyncio.ensure_future(
            self._pool.execute(_MARK_MANY, self._sink, now, keys, states, nexts, holds, reasons)
        )

    async def held_on(self) -> list[str]:
        """The distinct `hold_on` values of held rows."""
        rows = await self._pool.fetch(
            "SELECT DISTINCT hold_on FROM lumid_outbox WHERE sink = $1 AND state = 'held' "
            "AND hold_on IS NOT NULL",
            self._sink,
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
            self._sink,
            values,
        )
        moved = row_count(status)
        return moved

    async def prune_delivered(self, older_than_seconds: float) -> int:
        """Forget delivered rows last updated more than `older_than_seconds` ago."""
        cutoff = time.time() - older_than_seconds
        status = await self._pool.execute(
            "DELETE FROM lumid_outbox WHERE sink = $1 AND state = 'delivered' AND updated_at < $2",
            self._sink,
            cutoff,
        )
        return row_count(status)

    # -- inspection and replay (the CLI) ----------------------------------------

    async def stats(self) -> OutboxStats:
        """Row counts per state and the age of the oldest pending row."""
        rows = await self._pool.fetch(
            "SELECT state, count(*), min(created_at) FROM lumid_outbox WHERE sink = $1 "
            "GROUP BY state",
            self._sink,
        )
        return stats_of(rows)

    async def entries(self, *, state: str | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Rows of this sink (of one state when given), oldest first."""
        check_state(state)
        if state is None:
            rows = await self._pool.fetch(
                f"SELECT {COLUMNS} FROM lumid_outbox WHERE sink = $1 "  # noqa: S608 (fixed column names)
                "ORDER BY created_at, key LIMIT $2",
                self._sink,
                max(0, int(limit)),
            )
        else:
            rows = await self._pool.fetch(
                f"SELECT {COLUMNS} FROM lumid_outbox WHERE sink = $1 AND state = $2 "  # noqa: S608 (fixed column names)
                "ORDER BY created_at, key LIMIT $3",
                self._sink,
                state,
                max(0, int(limit)),
            )
        return [entry_of(r) for r in rows]

    async def entry(self, key: str) -> OutboxEntry | None:
        """One row by key, or None."""
        row = await self._pool.fetchrow(
            f"SELECT {COLUMNS} FROM lumid_outbox WHERE sink = $1 AND key = $2",  # noqa: S608 (fixed column names)
            self._sink,
            key,
        )
        return None if row is None else entry_of(row)

    async def retry(self, *, key: str | None = None, all_dead: bool = False) -> int:
        """Replay dead letters (`OutboxStore.retry`); their leases drop: any replica claims them."""
        check_retry(key, all_dead=all_dead)
        now = time.time()
        sql = (
            "UPDATE lumid_outbox SET state = 'pending', next_attempt_at = $1, updated_at = $1, "
            "attempts = 0, claimed_by = NULL, lease_until = 0 "
            "WHERE sink = $2 AND state = 'dead'"
        )
        if key is None:
            status = await self._pool.execute(sql, now, self._sink)
        else:
            status = await self._pool.execute(sql + " AND key = $3", now, self._sink, key)
        moved = row_count(status)
        return moved

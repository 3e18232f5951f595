"""`OutboxStore` on the plugin's SQLite database (table `outbox`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Final

import aiosqlite

from lumid_core.db import Database

from .model import (
    Delivered,
    NewEntry,
    OutboxEntry,
    OutboxStats,
    Outcome,
)
from .rows import (
    COLUMNS,
    SinkRows,
    check_retry,
    check_state,
    entry_of,
    outcome_columns,
    payload_text,
    stats_of,
)

__all__ = ["Outbox"]

_INSERT_ONE: Final = (
    "INSERT OR IGNORE INTO outbox (sink, key, state, attempts, created_at, updated_at, "
    "next_attempt_at, hold_on, reason, payload) VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?)"
)
_MAX_VALUES_ROWS: Final = 500  # 9 parameters a row, well under SQLite's variable limit
_MARK_DELIVERED: Final = (
    "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, updated_at = ?, "
    "next_attempt_at = ?, hold_on = NULL, reason = NULL "
    "WHERE sink = ? AND state = 'pending' AND key IN "
)
_MARK: Final = (
    "UPDATE outbox SET state = ?, attempts = attempts + 1, updated_at = ?, "
    "next_attempt_at = ?, hold_on = ?, reason = ? "
    "WHERE sink = ? AND key = ? AND state = 'pending'"
)


class Outbox(SinkRows[Database]):
    """The rows of one sink in the `outbox` table of a `Database` (an `OutboxStore`).

    Usable from any process that opens the same database (e.g. the CLI while a
    server runs).
    """

    # -- adding -----------------------------------------------------------------

    async def add(self, entries: Sequence[NewEntry], *, now: float | None = None) -> int:
        """Durably add `entries` in one transaction (one group commit).

        Keys already present are left as they are. Returns once the rows are on disk,
        with the number of rows inserted.
        """
        if not entries:
            return 0
        ts = time.time() if now is None else now
        params: list[Any] = []
        for e in entries:
            payload = payload_text(e.payload)
            params.extend((self._sink, e.key, e.state, ts, ts, ts, e.hold_on, e.reason, payload))
        if len(entries) == 1:
            # The same statement as every other single-row add: concurrent emits
            # share one transaction within a group commit.
            return await self.db.write(_INSERT_ONE, params)
        if len(entries) <= _MAX_VALUES_ROWS:
            # One multi-row statement: still one group-committed, atomic write.
            values = ", ".join(["(?, ?, ?, 0, ?, ?, ?, ?, ?, ?)"] * len(entries))
            head = _INSERT_ONE.split(" VALUES ", 1)[0]
            return await self.db.write(f"{head} VALUES {values}", params)
        rows = [params[i : i + 9] for i in range(0, len(params), 9)]

        async def work(conn: aiosqlite.Connection) -> int:
            cur = await conn.executemany(_INSERT_ONE, rows)
            return int(cur.rowcount)

        return await self.db.transaction(work)

    # -- the delivery side ------------------------------------------------------

    async def due(
        self, *, now: float | None = None, limit: int = 256, skip: int = 0
    ) -> list[OutboxEntry]:
        """Pending rows whose next attempt is due, oldest schedule first."""
        ts = time.time() if now is None else now
        rows = await self.db.read_all(
            f"SELECT {COLUMNS} FROM outbox WHERE sink = ? AND state = 'pending' "  # noqa: S608 (fixed column names)
            "AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ? OFFSET ?",
            (self._sink, ts, int(limit), int(skip)),
        )
        return [entry_of(r) for r in rows]

    async def next_due_at(self) -> float | None:
        """When the earliest pending row is due (a point read in the calling thread)."""
        row = self.db.read_one(
            "SELECT min(next_attempt_at) FROM outbox WHERE sink = ? AND state = 'pending'",
            (self._sink,),
        )
        return None if row is None or row[0] is None else float(row[0])

    async def pending_count(self) -> int:
        """How many rows are pending (a point read in the calling thread)."""
        row = self.db.read_one(
            "SELECT count(*) FROM outbox WHERE sink = ? AND state = 'pending'", (self._sink,)
        )
        return 0 if row is None else int(row[0])

    def mark(
        self, key: str, outcome: Outcome, *, next_attempt_at: float = 0.0
    ) -> Awaitable[object]:
        """Record the outcome of one attempt on a pending row (group-committed)."""
        now = time.time()
        state, next_at, hold_on, reason = outcome_columns(outcome, now, next_attempt_at)
        return self.db.write(_MARK, (state, now, next_at, hold_on, reason, self._sink, key))

    def mark_many(self, marks: Sequence[tuple[str, Outcome, float]]) -> Awaitable[object]:
        """Record many outcomes `(key, outcome, next_attempt_at)` in one group commit.

        The delivered ones are marked in one statement per 500 keys.
        """
        now = time.time()
        delivered = [key for key, outcome, _ in marks if isinstance(outcome, Delivered)]
        writes = [
            self.mark(key, outcome, next_attempt_at=next_at)
            for key, outcome, next_at in marks
            if not isinstance(outcome, Delivered)
        ]
        for i in range(0, len(delivered), _MAX_VALUES_ROWS):
            keys = delivered[i : i + _MAX_VALUES_ROWS]
            marks_sql = _MARK_DELIVERED + "(" + ", ".join("?" * len(keys)) + ")"
            writes.append(self.db.write(marks_sql, (now, now, self._sink, *keys)))
        return asyncio.gather(*writes)

    async def held_on(self) -> list[str]:
        """The distinct `hold_on` values of held rows."""
        return [
            str(v)
            for v in await self.db.read_column(
                "SELECT DISTINCT hold_on FROM outbox WHERE sink = ? AND state = 'held' "
                "AND hold_on IS NOT NULL",
                (self._sink,),
            )
        ]

    async def release(self, hold_on: Iterable[str]) -> int:
        """Held rows waiting on any of `hold_on` become pending now; returns how many."""
        values = list(dict.fromkeys(hold_on))
        if not values:
            return 0
        now = time.time()

        async def work(conn: aiosqlite.Connection) -> int:
            moved = 0
            for value in values:
                cur = await conn.execute(
                    "UPDATE outbox SET state = 'pending', next_attempt_at = ?, updated_at = ?, "
                    "hold_on = NULL WHERE sink = ? AND state = 'held' AND hold_on = ?",
                    (now, now, self._sink, value),
                )
                moved += cur.rowcount
            return moved

        return await self.db.transaction(work)

    async def prune_delivered(self, older_than_seconds: float) -> int:
        """Forget delivered rows last updated more than `older_than_seconds` ago."""
        cutoff = time.time() - older_than_seconds

        async def work(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(
                "DELETE FROM outbox WHERE sink = ? AND state = 'delivered' AND updated_at < ?",
                (self._sink, cutoff),
            )
            return cur.rowcount

        return await self.db.transaction(work)

    # -- inspection and replay (the CLI) ----------------------------------------

    async def stats(self) -> OutboxStats:
        """Counts per state and the oldest pending row's age."""
        rows = await self.db.read_all(
            "SELECT state, count(*), min(created_at) FROM outbox WHERE sink = ? GROUP BY state",
            (self._sink,),
        )
        return stats_of(rows)

    async def entries(self, *, state: str | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Rows of this sink (of one state when given), oldest first."""
        check_state(state)
        where = "sink = ?" + ("" if state is None else " AND state = ?")
        params: tuple[Any, ...] = (self._sink,) if state is None else (self._sink, state)
        rows = await self.db.read_all(
            f"SELECT {COLUMNS} FROM outbox WHERE {where} ORDER BY created_at, key LIMIT ?",  # noqa: S608 (fixed column names)
            (*params, max(0, int(limit))),
        )
        return [entry_of(r) for r in rows]

    async def entry(self, key: str) -> OutboxEntry | None:
        """The row stored under `key`, or None."""
        rows = await self.db.read_all(
            f"SELECT {COLUMNS} FROM outbox WHERE sink = ? AND key = ?",  # noqa: S608 (fixed column names)
            (self._sink, key),
        )
        return entry_of(rows[0]) if rows else None

    async def retry(self, *, key: str | None = None, all_dead: bool = False) -> int:
        """Replay dead letters (`OutboxStore.retry`): one write, seen by every process."""
        check_retry(key, all_dead=all_dead)
        now = time.time()
        sql = (
            "UPDATE outbox SET state = 'pending', next_attempt_at = ?, updated_at = ?, "
            "attempts = 0 WHERE sink = ? AND state = 'dead'"
        )
        params: tuple[Any, ...] = (now, now, self._sink)
        if key is not None:
            sql += " AND key = ?"
            params = (*params, key)

        async def work(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(sql, params)
            return cur.rowcount

        return await self.db.transaction(work)

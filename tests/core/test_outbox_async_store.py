"""The outbox worker on a store whose reads suspend (PostgreSQL's do): no row twice."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path

from lumid_core import Database
from lumid_core.outbox import (
    Delivered,
    NewEntry,
    Outbox,
    OutboxEntry,
    OutboxWorker,
    Outcome,
    WorkerSettings,
)


class SlowNextDue(Outbox):
    """The SQLite outbox, with `next_due_at` suspending like a round trip to a server."""

    async def next_due_at(self) -> float | None:
        await asyncio.sleep(0.2)
        return await super().next_due_at()


async def test_an_outcome_recorded_during_the_next_due_read_is_not_delivered_again(
    tmp_path: Path,
) -> None:
    """The worker reads `due()`, then `next_due_at()`: a row whose outcome lands while
    the second read suspends was still pending in the first one's snapshot."""
    db = await Database.open(tmp_path / "acl.sqlite")
    calls: Counter[str] = Counter()

    async def deliver(row: OutboxEntry) -> Outcome:
        calls[row.key] += 1
        # Another emit wakes the worker while this outcome waits to be recorded.
        asyncio.get_running_loop().call_soon(worker.wake)
        return Delivered()

    box = SlowNextDue(db, "billing")
    worker = OutboxWorker(
        box,
        deliver,
        logger=logging.getLogger("tests"),
        settings=WorkerSettings(idle_poll=0.01, mark_delay=0.05),
    )
    worker.start()
    try:
        await box.add([NewEntry("x", {})])
        worker.wake()
        assert await worker.drain(10)
        await asyncio.sleep(0.5)  # a second delivery, if any, would land by now
    finally:
        await worker.stop(1)
        await db.close()
    assert calls == {"x": 1}


class SlowDue(Outbox):
    """The SQLite outbox, with `due()` slower than the worker's `idle_poll` (a claim on
    a busy PostgreSQL server)."""

    async def due(
        self, *, now: float | None = None, limit: int = 256, skip: int = 0
    ) -> list[OutboxEntry]:
        rows = await super().due(now=now, limit=limit, skip=skip)
        await asyncio.sleep(0.06)
        return rows


async def test_a_read_slower_than_idle_poll_never_stalls_the_worker(tmp_path: Path) -> None:
    """A read that outlasts `idle_poll` left the loop waiting with no timer while rows
    were in flight; once they landed nothing woke it (rows stayed pending for good)."""
    db = await Database.open(tmp_path / "acl.sqlite")
    box = SlowDue(db, "billing")
    await box.add([NewEntry(f"k{i}", {}) for i in range(200)])

    async def deliver(row: OutboxEntry) -> Outcome:
        await asyncio.sleep(0.001)
        return Delivered()

    worker = OutboxWorker(
        box,
        deliver,
        logger=logging.getLogger("tests"),
        settings=WorkerSettings(concurrency=8, batch=16, idle_poll=0.02),
    )
    worker.start()
    try:
        assert await worker.drain(20)
    finally:
        await worker.stop(1)
        await db.close()

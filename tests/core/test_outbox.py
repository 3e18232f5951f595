"""The host-neutral durable outbox and its delivery worker, on a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lumid_core.db import Database
from lumid_core.outbox import (
    Dead,
    Delivered,
    Held,
    NewEntry,
    Outbox,
    OutboxEntry,
    OutboxWorker,
    Outcome,
    RateLimitedLog,
    Retry,
    Spool,
    WorkerSettings,
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "outbox.sqlite")
    yield database
    await database.close()


async def test_add_is_durable_first_key_wins_and_counts(db: Database, tmp_path: Path) -> None:
    box = Outbox(db, "billing")
    await box.add([NewEntry("t1", {"cost": "1.50"}), NewEntry("t2", {"cost": "2"}, hold_on="bob")])
    await box.add([NewEntry("t1", {"cost": "9.99"})])  # the same key never changes
    await box.add([NewEntry("t3", {"cost": "3"}, reason="bad row", dead=True)])
    stats = await box.stats()
    assert (stats.pending, stats.held, stats.delivered, stats.dead) == (1, 1, 0, 1)
    assert stats.oldest_pending_age_seconds is not None
    assert stats.oldest_pending_age_seconds >= 0
    # Another connection (the CLI's, in another process) sees the same rows.
    other = await Database.open(tmp_path / "outbox.sqlite")
    try:
        rows = await Outbox(other, "billing").entries(state="pending")
        assert [(r.key, r.payload) for r in rows] == [("t1", {"cost": "1.50"})]
        assert (await Outbox(other, "other-sink").stats()).pending == 0
        held = await Outbox(other, "billing").entries(state="held")
        assert [(r.key, r.hold_on) for r in held] == [("t2", "bob")]
    finally:
        await other.close()
    with pytest.raises(ValueError, match="unknown outbox state"):
        await box.entries(state="lost")


async def test_retry_moves_dead_rows_back(db: Database) -> None:
    box = Outbox(db, "billing")
    await box.add([NewEntry(k, {}, reason="unknown user", dead=True) for k in ("a", "b", "c")])
    assert await box.retry(key="a") == 1
    assert await box.retry(key="a") == 0  # no longer dead
    assert await box.retry(key="missing") == 0
    assert await box.retry(all_dead=True) == 2
    assert (await box.stats()).pending == 3
    with pytest.raises(ValueError, match="exactly one"):
        await box.retry()
    with pytest.raises(ValueError, match="exactly one"):
        await box.retry(key="a", all_dead=True)


async def test_release_held(db: Database) -> None:
    box = Outbox(db, "billing")
    await box.add([NewEntry("t1", {}, hold_on="p1"), NewEntry("t2", {}, hold_on="p2")])
    assert sorted(await box.held_on()) == ["p1", "p2"]
    assert await box.release(["p1", "nobody"]) == 1
    stats = await box.stats()
    assert (stats.pending, stats.held) == (1, 1)


class Script:
    """A deliver coroutine answering from a per-key script of outcomes."""

    def __init__(self, default: Outcome) -> None:
        self.default = default
        self.script: dict[str, list[Outcome]] = {}
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, row: OutboxEntry) -> Outcome:
        self.calls.append(row.key)
        if self.gate is not None:
            await self.gate.wait()
        queue = self.script.get(row.key)
        return queue.pop(0) if queue else self.default


def worker(
    box: Outbox, deliver: Script, logger: logging.Logger, concurrency: int = 16
) -> OutboxWorker:
    knobs = WorkerSettings(concurrency=concurrency, base_delay=0.01, max_delay=0.05, idle_poll=0.05)
    return OutboxWorker(box, deliver, logger=logger, settings=knobs)


async def test_worker_outcomes(db: Database, logger: logging.Logger) -> None:
    box = Outbox(db, "billing")
    deliver = Script(Delivered())
    deliver.script = {
        "flaky": [Retry("HTTP 503"), Retry("timeout")],
        "rejected": [Dead("unknown user")],
        "nomail": [Held("p9", "no email known for p9")],
    }
    w = worker(box, deliver, logger)
    w.start()
    try:
        await box.add([NewEntry(k, {"k": k}) for k in ("ok", "flaky", "rejected", "nomail")])
        w.wake()
        assert await w.drain(10)
    finally:
        await w.stop(1)
    assert deliver.calls.count("flaky") == 3
    assert deliver.calls.count("ok") == 1
    by_key = {e.key: e for e in await box.entries()}
    assert by_key["ok"].state == "delivered"
    assert by_key["flaky"].state == "delivered"
    assert by_key["flaky"].attempts == 3
    assert by_key["rejected"].state == "dead"
    assert by_key["rejected"].reason == "unknown user"
    assert by_key["nomail"].state == "held"
    assert by_key["nomail"].hold_on == "p9"


async def test_worker_bounded_concurrency_and_stop_leaves_rows(
    db: Database, logger: logging.Logger
) -> None:
    box = Outbox(db, "billing")
    deliver = Script(Delivered())
    deliver.gate = asyncio.Event()  # every delivery hangs
    w = worker(box, deliver, logger, concurrency=3)
    await box.add([NewEntry(f"t{i}", {}) for i in range(10)])
    w.start()
    for _ in range(200):
        if len(deliver.calls) >= 3:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert len(deliver.calls) == 3  # never more than `concurrency` in flight
    await w.stop(0.2)  # bounded: hung deliveries are abandoned
    assert not w.running
    assert (await box.stats()).pending == 10  # nothing lost, nothing marked


async def test_worker_survives_a_raising_sink(db: Database, logger: logging.Logger) -> None:
    box = Outbox(db, "billing")
    calls = 0

    async def deliver(row: OutboxEntry) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug")
        return Delivered()

    w = OutboxWorker(
        box, deliver, logger=logger, settings=WorkerSettings(base_delay=0.01, max_delay=0.02)
    )
    w.start()
    try:
        await box.add([NewEntry("t", {})])
        w.wake()
        assert await w.drain(10)
    finally:
        await w.stop(1)
    entry = await box.entry("t")
    assert entry is not None
    assert entry.state == "delivered"
    assert calls == 2


async def test_recheck_releases_held(db: Database, logger: logging.Logger) -> None:
    box = Outbox(db, "billing")
    known: set[str] = set()

    async def deliver(row: OutboxEntry) -> Outcome:
        return Delivered()

    async def recheck() -> int:
        return await box.release([p for p in await box.held_on() if p in known])

    w = OutboxWorker(
        box, deliver, logger=logger, recheck=recheck, settings=WorkerSettings(recheck_interval=0.02)
    )
    await box.add([NewEntry("t", {}, hold_on="carol")])
    w.start()
    try:
        await asyncio.sleep(0.1)
        assert (await box.stats()).held == 1
        known.add("carol")
        for _ in range(300):
            if (await box.stats()).delivered == 1:
                break
            await asyncio.sleep(0.01)
    finally:
        await w.stop(1)
    assert (await box.stats()).delivered == 1


def test_rate_limited_log(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger("tests.rl"), interval=3600)
    with caplog.at_level(logging.WARNING, "tests.rl"):
        assert log.warning("x", "first %s", 1)
        assert not log.warning("x", "second %s", 2)
        assert log.warning("y", "other topic")
    assert [r.getMessage() for r in caplog.records] == ["first 1", "other topic"]


async def test_status_line_when_something_waits(
    db: Database, logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(db, "billing")
    await box.add([NewEntry("t1", {}, reason="unknown user", dead=True)])

    async def deliver(row: OutboxEntry) -> Outcome:
        return Delivered()

    w = OutboxWorker(
        box,
        deliver,
        logger=logger,
        settings=WorkerSettings(status_interval=0.01, idle_poll=0.01),
    )
    with caplog.at_level(logging.INFO, logger.name):
        w.start()
        try:
            for _ in range(500):
                if any("outbox:" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.01)
        finally:
            await w.stop(1)
    lines = [r.getMessage() for r in caplog.records if "outbox:" in r.getMessage()]
    assert lines
    assert "0 pending (oldest -), 0 held, 1 dead, 0 delivered" in lines[0]


async def test_a_version_1_database_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    from lumid_core.db import MIGRATIONS, SCHEMA_VERSION, schema_version

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO principals VALUES ('alice', 'alice@example.com', 1.0)")
    conn.close()
    db = await Database.open(path)
    try:
        assert schema_version(path) == SCHEMA_VERSION >= 2
        await Outbox(db, "billing").add([NewEntry("t1", {"a": 1})])
        assert (await Outbox(db, "billing").stats()).pending == 1
        assert db.read_one("SELECT email FROM principals") == ("alice@example.com",)
    finally:
        await db.close()


@pytest.mark.parametrize("n", [2, 700])
async def test_add_many_rows_at_once(db: Database, n: int) -> None:
    box = Outbox(db, "billing")
    await box.add([NewEntry("dup", {"first": True})])
    await box.add([NewEntry(f"t{i}", {"i": i}) for i in range(n)] + [NewEntry("dup", {})])
    assert (await box.stats()).pending == n + 1
    entry = await box.entry("dup")
    assert entry is not None
    assert entry.payload == {"first": True}


class CountingOutbox(Outbox):
    """The SQLite store, counting reads of due rows and transactions of outcomes."""

    due_reads = 0
    mark_batches = 0

    async def due(self, **kw: Any) -> list[OutboxEntry]:
        self.due_reads += 1
        return await super().due(**kw)

    def mark_many(self, marks: Any) -> Any:
        self.mark_batches += 1
        return super().mark_many(marks)


async def test_offered_rows_are_delivered_without_reading_them_back(
    db: Database, logger: logging.Logger
) -> None:
    box = CountingOutbox(db, "billing")
    deliver = Script(Delivered())
    w = OutboxWorker(box, deliver, logger=logger, settings=WorkerSettings(idle_poll=3600))
    w.start()
    try:
        await asyncio.sleep(0.05)  # the first read at start
        reads = box.due_reads
        for i in range(50):
            now = time.time()
            assert await box.add([NewEntry(f"t{i}", {"i": i})], now=now) == 1
            w.offer([OutboxEntry("billing", f"t{i}", "pending", 0, now, now, None, {"i": i})])
        for _ in range(500):
            if len(deliver.calls) == 50:
                break
            await asyncio.sleep(0.01)
        assert box.due_reads == reads  # handed over: never read back
        assert await w.drain(10)
        assert box.mark_batches < 50  # outcomes recorded together
        assert sorted(deliver.calls) == sorted(f"t{i}" for i in range(50))
        assert (await box.stats()).delivered == 50
        # A key already stored is not inserted again: add says so (the caller then
        # wakes the worker instead of handing over a row that is not the stored one).
        assert await box.add([NewEntry("t0", {"other": True})]) == 0
    finally:
        await w.stop(1)


async def test_a_steady_stream_of_outcomes_is_recorded_once_per_mark_delay(
    db: Database, logger: logging.Logger
) -> None:
    """Deliveries landing one after another share commits: about one per `mark_delay`."""
    box = CountingOutbox(db, "billing")
    deliver = Script(Delivered())
    knobs = WorkerSettings(idle_poll=3600, mark_delay=0.02)
    w = OutboxWorker(box, deliver, logger=logger, settings=knobs)
    w.start()
    try:
        start = time.monotonic()
        for i in range(300):  # one row per emit, as FlowMesh reports finished tasks
            now = time.time()
            assert await box.add([NewEntry(f"s{i}", {"i": i})], now=now) == 1
            w.offer([OutboxEntry("billing", f"s{i}", "pending", 0, now, now, None, {"i": i})])
        streamed = time.monotonic() - start
        assert await w.drain(10)
        assert (await box.stats()).delivered == 300
        # One batch per mark_delay while the stream lasts, plus the last one or two; a
        # commit per delivery would be ~300.
        assert box.mark_batches <= streamed / knobs.mark_delay + 3, (box.mark_batches, streamed)
    finally:
        await w.stop(1)


class Clocked(Script):
    """`Script` that also notes when each delivery started (monotonic)."""

    def __init__(self, default: Outcome) -> None:
        super().__init__(default)
        self.started: list[float] = []

    async def __call__(self, row: OutboxEntry) -> Outcome:
        self.started.append(time.monotonic())
        return await super().__call__(row)


async def _offer_rows(box: Outbox, w: OutboxWorker, keys: list[str], gap: float) -> None:
    for key in keys:
        now = time.time()
        assert await box.add([NewEntry(key, {"k": key})], now=now) == 1
        w.offer([OutboxEntry("billing", key, "pending", 0, now, now, None, {"k": key})])
        await asyncio.sleep(gap)


async def _wait_started(deliver: Clocked, n: int) -> None:
    """Until `n` deliveries started (not `drain()`: it would read the store at once)."""
    for _ in range(500):
        if len(deliver.started) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(deliver.started)} of {n} deliveries started")


@contextlib.asynccontextmanager
async def _lingering_worker(
    db: Database, logger: logging.Logger, *, linger: float, concurrency: int
) -> AsyncIterator[tuple[Outbox, Clocked, OutboxWorker]]:
    box = Outbox(db, "billing")
    deliver = Clocked(Delivered())
    knobs = WorkerSettings(idle_poll=3600, linger=linger, concurrency=concurrency)
    w = OutboxWorker(box, deliver, logger=logger, settings=knobs)
    w.start()
    try:
        await asyncio.sleep(0.05)  # the first read at start
        yield box, deliver, w
    finally:
        await w.stop(1)


async def test_offered_rows_linger_and_go_out_together(
    db: Database, logger: logging.Logger
) -> None:
    async with _lingering_worker(db, logger, linger=0.3, concurrency=16) as (box, deliver, w):
        first = time.monotonic()
        await _offer_rows(box, w, [f"l{i}" for i in range(5)], gap=0.01)
        await _wait_started(deliver, 5)
        # None before the first row's linger ran out, then all of them at once.
        assert min(deliver.started) - first >= 0.25
        assert max(deliver.started) - min(deliver.started) < 0.05


async def test_rows_filling_every_free_slot_go_out_without_lingering(
    db: Database, logger: logging.Logger
) -> None:
    async with _lingering_worker(db, logger, linger=30.0, concurrency=4) as (box, deliver, w):
        start = time.monotonic()
        await _offer_rows(box, w, [f"f{i}" for i in range(4)], gap=0)
        await _wait_started(deliver, 4)
        assert max(deliver.started) - start < 5  # not the 30 s linger


async def test_spool_keeps_rows_until_the_store_takes_them(
    db: Database, logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(db, "billing")
    spool = Spool(
        box,
        logger=logger,
        name="tests.spool",
        capacity=2,
        describe=lambda e: f"task {e.key}",
        retry_interval=0.01,
    )
    refused = spool.put([NewEntry("a", {}), NewEntry("b", {}), NewEntry("c", {})], "busy")
    assert [e.key for e in refused] == ["c"]  # beyond the bound: the caller logs it
    assert len(spool) == 2
    for _ in range(200):
        if not len(spool):
            break
        await asyncio.sleep(0.01)
    assert len(spool) == 0
    assert (await box.stats()).pending == 2
    assert await spool.close(1) == 0

"""The outbox contract on SQLite and PostgreSQL, and the PostgreSQL outbox's leases."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from lumid_core.outbox import (
    Dead,
    Delivered,
    Held,
    NewEntry,
    OutboxEntry,
    OutboxWorker,
    Outcome,
    Retry,
    WorkerSettings,
)
from lumid_core.pg import PgDatabase, PgOutbox

from .conftest import Backend


async def test_add_first_key_wins_states_and_stats(backend: Backend) -> None:
    box = (await backend.open()).outbox("billing")
    await box.add([NewEntry("t1", {"cost": "1.50"}), NewEntry("t2", {"cost": "2"}, hold_on="bob")])
    await box.add([NewEntry("t1", {"cost": "9.99"})])  # the same key never changes
    await box.add([NewEntry("t3", {"cost": "3"}, reason="bad row", dead=True)])
    # Many at once, one key repeated inside the batch: the first row wins.
    await box.add([NewEntry(f"m{i}", {"i": i}) for i in range(600)] + [NewEntry("m0", {"i": -1})])
    stats = await box.stats()
    assert (stats.pending, stats.held, stats.delivered, stats.dead) == (601, 1, 0, 1)
    assert stats.oldest_pending_age_seconds is not None
    assert (await box.entry("t1")).payload == {"cost": "1.50"}  # type: ignore[union-attr]
    assert (await box.entry("m0")).payload == {"i": 0}  # type: ignore[union-attr]
    assert await box.entry("missing") is None
    other = (await backend.open()).outbox("billing")  # another process sees the rows
    held = await other.entries(state="held")
    assert [(r.key, r.hold_on) for r in held] == [("t2", "bob")]
    assert [r.key for r in await other.entries(state="dead")] == ["t3"]
    assert (await (await backend.open()).outbox("other-sink").stats()).pending == 0
    with pytest.raises(ValueError, match="unknown outbox state"):
        await box.entries(state="lost")


async def test_due_mark_retry_release(backend: Backend) -> None:
    box = (await backend.open()).outbox("billing")
    now = time.time()
    await box.add([NewEntry(k, {}) for k in ("a", "b", "c")], now=now - 10)
    await box.add([NewEntry("h", {}, hold_on="p1")])
    due = await box.due(now=now, limit=10)
    assert sorted(e.key for e in due) == ["a", "b", "c"]
    await box.mark("a", Delivered())
    await box.mark("b", Retry("HTTP 503"), next_attempt_at=now + 3600)
    await box.mark("c", Dead("unknown user"))
    await box.mark("a", Dead("late"))  # not pending any more: ignored
    by_key = {e.key: e for e in await box.entries()}
    assert (by_key["a"].state, by_key["a"].attempts) == ("delivered", 1)
    assert (by_key["b"].state, by_key["b"].reason) == ("pending", "HTTP 503")
    assert (by_key["c"].state, by_key["c"].reason) == ("dead", "unknown user")
    assert await box.due(now=now, limit=10) == []  # b waits for its backoff
    assert await box.held_on() == ["p1"]
    assert await box.release(["p1", "nobody"]) == 1
    assert [e.key for e in await box.due(limit=10)] == ["h"]
    assert await box.retry(key="c") == 1
    assert await box.retry(key="c") == 0
    with pytest.raises(ValueError, match="exactly one"):
        await box.retry()


class Script:
    """A deliver coroutine answering from a per-key script of outcomes."""

    def __init__(self, default: Outcome) -> None:
        self.default = default
        self.script: dict[str, list[Outcome]] = {}
        self.calls: list[str] = []

    async def __call__(self, row: OutboxEntry) -> Outcome:
        self.calls.append(row.key)
        queue = self.script.get(row.key)
        return queue.pop(0) if queue else self.default


async def test_the_worker_delivers_on_either_store(backend: Backend) -> None:
    box = (await backend.open()).outbox("billing")
    deliver = Script(Delivered())
    deliver.script = {
        "flaky": [Retry("HTTP 503"), Retry("timeout")],
        "rejected": [Dead("unknown user")],
        "nomail": [Held("p9", "no email known for p9")],
    }
    w = OutboxWorker(
        box,
        deliver,
        logger=logging.getLogger("tests"),
        settings=WorkerSettings(idle_poll=0.05, base_delay=0.01, max_delay=0.05),
    )
    w.start()
    try:
        await box.add([NewEntry(k, {"k": k}) for k in ("ok", "flaky", "rejected", "nomail")])
        await box.add([NewEntry(f"n{i}", {}) for i in range(200)])
        w.wake()
        assert await w.drain(20)
    finally:
        await w.stop(1)
    assert deliver.calls.count("flaky") == 3
    assert all(deliver.calls.count(k) == 1 for k in set(deliver.calls) - {"flaky"})
    by_key = {e.key: e for e in await box.entries(limit=1000)}
    assert by_key["flaky"].state == "delivered"
    assert by_key["rejected"].state == "dead"
    assert by_key["nomail"].hold_on == "p9"
    assert sum(1 for e in by_key.values() if e.state == "delivered") == 202


@pytest.fixture
async def two_replicas(pg_url: str) -> Any:
    a = await PgDatabase.open(pg_url, pool_size=2)
    b = await PgDatabase.open(pg_url, pool_size=2)
    assert a.replica_id != b.replica_id
    yield a, b
    await a.close()
    await b.close()


async def test_claims_never_overlap_and_a_lease_expires(
    two_replicas: tuple[PgDatabase, PgDatabase], pg_url: str
) -> None:
    a, b = (PgOutbox(db, "billing", lease_seconds=1.0) for db in two_replicas)
    writer_db = await PgDatabase.open(pg_url, pool_size=1)
    writer = PgOutbox(writer_db, "billing")
    assert await writer.add([NewEntry(f"k{i}", {}) for i in range(100)]) == 100
    await writer.aclose()  # the writer stops: its rows are anyone's
    await writer_db.close()
    got_a, got_b = await asyncio.gather(a.due(limit=60), b.due(limit=60))
    keys_a, keys_b = {e.key for e in got_a}, {e.key for e in got_b}
    assert not keys_a & keys_b
    assert len(keys_a | keys_b) == 100
    # Replica a "dies" without marking (its pool goes): its rows come back once the
    # lease ends. (A real SIGKILL: tests/flowmesh/test_postgres_replicas.py.)
    await two_replicas[0].close()
    await b.mark_many([(key, Delivered(), 0.0) for key in keys_b])
    assert await b.due(limit=200) == []
    await asyncio.sleep(1.3)
    again = {e.key for e in await b.due(limit=200)}
    assert again == keys_a
    assert await b.pending_count() == len(keys_a)
    for key in again:
        await b.mark(key, Delivered())
    assert await b.pending_count() == 0
    assert await b.next_due_at() is None
    assert (await b.stats()).delivered == 100


async def test_rows_added_by_a_replica_are_its_own_until_it_dies(
    two_replicas: tuple[PgDatabase, PgDatabase],
) -> None:
    """A row the sink hands straight to its own worker (no `due()`) is leased to the
    replica that wrote it: no other replica claims it while that one lives."""
    a, b = (PgOutbox(db, "billing", lease_seconds=1.0) for db in two_replicas)
    assert await a.add([NewEntry(f"k{i}", {}) for i in range(5)]) == 5
    assert await a.add([NewEntry("k0", {}), NewEntry("h", {}, hold_on="p")]) == 1
    assert await b.due(limit=10) == []  # a owns them
    await asyncio.sleep(1.5)  # past one lease: a renews what it added
    assert await b.due(limit=10) == []
    # a may still claim its own rows (e.g. ones its worker's queue had no room for).
    assert sorted(e.key for e in await a.due(limit=10)) == [f"k{i}" for i in range(5)]
    await two_replicas[0].close()  # a dies without marking: its leases end
    await asyncio.sleep(1.3)
    assert sorted(e.key for e in await b.due(limit=10)) == [f"k{i}" for i in range(5)]
    await b.aclose()


async def test_a_live_replica_renews_its_leases_and_hands_them_back_on_close(
    two_replicas: tuple[PgDatabase, PgDatabase],
) -> None:
    a, b = (PgOutbox(db, "billing", lease_seconds=1.0) for db in two_replicas)
    await a.add([NewEntry(f"k{i}", {}) for i in range(10)])
    assert len(await a.due(limit=10)) == 10  # queued on a, not delivered yet
    await asyncio.sleep(2.5)  # well past one lease: a renewed them
    assert await b.due(limit=10) == []
    await a.aclose()  # a stops: its rows are free at once
    assert sorted(e.key for e in await b.due(limit=10)) == sorted(f"k{i}" for i in range(10))
    assert await a.due(limit=10) == []  # a closed outbox claims nothing more
    await b.aclose()

"""The SQLite grant store on real files: what only SQLite does.

What every store must do (levels, revoke, listings, reconcile, atomicity) is the
contract suite in `tests/stores`, run on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lumid_core import Database, DatabaseError, GrantStore, Level, SqliteGrantStore
from lumid_core.db import SCHEMA_VERSION, schema_version


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(db_path)
    yield database
    await database.close()


@pytest.fixture
def store(db: Database) -> SqliteGrantStore:
    return SqliteGrantStore(db)


def dump(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM grants ORDER BY kind, id, principal_id").fetchall()
    finally:
        conn.close()


async def test_store_works_through_the_interface(store: SqliteGrantStore) -> None:
    """Code written against `GrantStore` (registrar, engine) drives the SQLite store."""
    grants: GrantStore = store
    await grants.grant("workflow", "w1", "alice", Level.WRITE)
    await grants.grant("workflow", "w1", "alice", Level.READ)  # never lowers
    assert await grants.level("workflow", "w1", "alice") is Level.WRITE
    assert await grants.ids("workflow", "alice", Level.READ) == {"w1"}
    assert await grants.revoke("workflow", "w1", "alice") is True
    assert await grants.revoke("workflow", "w1", "alice") is False
    assert await grants.level("workflow", "w1", "alice") is None


async def test_open_creates_parents_and_schema(db_path: Path, db: Database) -> None:
    assert db_path.parent.is_dir()
    assert schema_version(db_path) == SCHEMA_VERSION
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_grants_persist_across_reopen_and_are_durable_on_return(db_path: Path) -> None:
    db = await Database.open(db_path)
    await SqliteGrantStore(db).grant("workflow", "w1", "alice", Level.WRITE)
    # Visible to another connection (another process) as soon as grant() returned.
    assert dump(db_path)[0][:4] == ("workflow", "w1", "alice", 2)
    await db.close()
    db = await Database.open(db_path)
    try:
        assert await SqliteGrantStore(db).level("workflow", "w1", "alice") is Level.WRITE
    finally:
        await db.close()


async def test_reads_see_other_processes_commits(db_path: Path, store: SqliteGrantStore) -> None:
    assert await store.level("job", "x", "eve") is None
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO grants VALUES ('job', 'x', 'eve', 1, 0, 0)",
    )
    conn.commit()
    assert await store.level("job", "x", "eve") is Level.READ
    assert await store.ids("job", "eve", Level.READ) == {"x"}
    conn.execute("DELETE FROM grants WHERE principal_id = 'eve'")
    conn.commit()
    conn.close()
    assert await store.level("job", "x", "eve") is None


async def test_concurrent_grants_and_reads_never_lock(
    db_path: Path, store: SqliteGrantStore
) -> None:
    stop = threading.Event()
    other_errors: list[BaseException] = []

    def other_process() -> None:  # another writer on the same file, like the CLI
        conn = sqlite3.connect(db_path, timeout=5)
        try:
            i = 0
            while not stop.is_set():
                conn.execute(
                    "INSERT OR REPLACE INTO grants VALUES ('job', ?, 'cli', 1, 0, 0)", (f"c{i}",)
                )
                conn.commit()
                i += 1
                # A busy CLI, not a tight loop: SQLite's lock is not fair, and a writer
                # that re-takes it the instant it lets go can starve any other writer.
                stop.wait(0.002)
        except BaseException as exc:
            other_errors.append(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=other_process)
    thread.start()
    try:

        async def one(i: int) -> Level | None:
            await store.grant("job", f"j{i}", f"p{i % 7}", Level.WRITE)
            await store.ids("job", f"p{i % 7}", Level.READ)
            return await store.level("job", f"j{i}", f"p{i % 7}")

        levels = await asyncio.gather(*(one(i) for i in range(400)))
    finally:
        stop.set()
        thread.join()
    assert other_errors == []
    assert levels == [Level.WRITE] * 400
    assert len(await store.ids("job", "cli", Level.READ)) > 0  # the other writer did write
    assert len(await store.ids("job", "p3", Level.WRITE)) == len(range(3, 400, 7))


async def test_one_bad_write_does_not_fail_its_batch(db: Database, store: SqliteGrantStore) -> None:
    bad = db.write("INSERT INTO no_such_table VALUES (1)")
    good = [store.grant("job", f"g{i}", "alice", Level.READ) for i in range(10)]
    results = await asyncio.gather(bad, *good, return_exceptions=True)
    assert isinstance(results[0], DatabaseError)
    assert results[1:] == [None] * 10
    assert len(await store.ids("job", "alice", Level.READ)) == 10


def test_unusable_paths_name_the_variable(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database at all" * 100)
    folder = tmp_path / "folder.sqlite"
    folder.mkdir()
    for path, why in [
        (not_a_dir / "acl.sqlite", "cannot create its folder"),
        (garbage, "not a SQLite database"),
        (folder, "cannot open"),
    ]:
        with pytest.raises(DatabaseError) as caught:
            asyncio.run(Database.open(path))
        message = str(caught.value)
        assert "LUMID_ACL_DB_PATH" in message
        assert str(path) in message
        assert why in message
        assert isinstance(caught.value, RuntimeError)


def test_newer_schema_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(DatabaseError, match="newer than this lumid-core"):
        asyncio.run(Database.open(db_path))


async def test_a_locked_database_fails_a_batch_once_not_once_per_write(
    db_path: Path, db: Database, store: SqliteGrantStore
) -> None:
    # When another process holds the write lock past the busy timeout, the batch's
    # BEGIN fails. Retrying each write on its own would wait the busy timeout once
    # per queued write (5 s x N): requests and shutdown would hang behind it.
    begins: list[str] = []
    await db._writer.execute("PRAGMA busy_timeout = 20")  # short: keep the test quick
    await db._writer.set_trace_callback(
        lambda sql: begins.append(sql) if sql.startswith("BEGIN") else None
    )
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        results = await asyncio.gather(
            *(store.grant("job", f"l{i}", "alice", Level.WRITE) for i in range(20)),
            return_exceptions=True,
        )
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert all(isinstance(r, DatabaseError) for r in results), results
    assert "locked" in str(results[0])
    assert len(begins) == 1
    await store.grant("job", "after", "alice", Level.WRITE)  # the writer still works
    assert await store.level("job", "after", "alice") == Level.WRITE


async def test_cancelled_while_waiting_to_begin_leaves_no_transaction_open(
    db_path: Path, db: Database, store: SqliteGrantStore
) -> None:
    # BEGIN runs on the writer's thread: cancelling the caller does not stop it, so
    # it may begin after all. Left open, every later write would fail ("cannot start
    # a transaction within a transaction") until a restart.
    await store.grant("job", "keep", "alice", Level.WRITE)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        revoking = asyncio.create_task(store.revoke("job", "keep", "alice"))
        await asyncio.sleep(0.1)  # the writer's thread is now waiting for the lock
        revoking.cancel()
        await asyncio.sleep(0)
        other.execute("ROLLBACK")  # the lock frees up: the writer's BEGIN goes through
    finally:
        other.close()
    with pytest.raises(asyncio.CancelledError):
        await revoking
    await store.grant("job", "after", "alice", Level.WRITE)
    assert await store.level("job", "after", "alice") == Level.WRITE
    assert await store.revoke("job", "keep", "alice")

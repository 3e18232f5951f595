"""Database faults the writer must report as they are: a full disk, a replaced file."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import lumid_core.db
from lumid_core import DatabaseError
from lumid_core.db import Database
from lumid_core.dbfile import servers_dir
from lumid_core.doctor import Status, check_database, check_database_identity
from lumid_core.store import Grant, Level, SqliteGrantStore

# SQLite rolls the whole transaction back itself on a full disk, so the writer's
# own ROLLBACK then fails ("cannot rollback - no transaction is active"). A trigger
# raising ROLLBACK does exactly the same, on demand.
_FULL = (
    "CREATE TRIGGER disk_full BEFORE INSERT ON grants WHEN NEW.kind = 'full' "
    "BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full'); END"
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "faults.sqlite")
    conn = sqlite3.connect(tmp_path / "faults.sqlite", isolation_level=None)
    conn.execute(_FULL)
    conn.close()
    yield database
    await database.close()


async def test_a_full_disk_is_reported_as_such_not_as_a_failed_rollback(db: Database) -> None:
    store = SqliteGrantStore(db)
    with pytest.raises(DatabaseError, match="database or disk is full"):
        await store.grant("full", "x", "alice", Level.WRITE)
    # Within a group commit of several writes: the others still land.
    results = await asyncio.gather(
        store.grant("full", "y", "alice", Level.WRITE),
        store.grant("workflow", "ok", "alice", Level.WRITE),
        return_exceptions=True,
    )
    assert isinstance(results[0], DatabaseError)
    assert "database or disk is full" in str(results[0])
    assert "cannot rollback" not in str(results[0])
    assert results[1] is None
    assert await store.level("workflow", "ok", "alice") == Level.WRITE
    # In an explicit transaction (a bulk import): all or nothing, the cause kept.
    now = time.time()
    grants = [
        Grant("workflow", "a", "bob", Level.READ, now, now),
        Grant("full", "b", "bob", Level.READ, now, now),
    ]
    with pytest.raises(sqlite3.DatabaseError, match="database or disk is full"):
        await store.import_grants(grants)
    assert await store.level("workflow", "a", "bob") is None
    await store.grant("workflow", "after", "bob", Level.READ)  # the writer still works


async def test_a_replaced_file_is_logged_and_doctor_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(lumid_core.db, "IDENTITY_CHECK_SECONDS", 0.05)
    path = tmp_path / "served.sqlite"
    server = await Database.open(path, watch=True)
    try:
        assert check_database_identity(path) is None  # a server on the very file: fine
        assert len(list(servers_dir(path).glob("*.json"))) == 1
        # An operator "resets" the database under the running server.
        other = tmp_path / "new.sqlite"
        sqlite3.connect(other).close()
        os.replace(other, path)
        with caplog.at_level(logging.ERROR, "lumid_core.db"):
            for _ in range(200):
                if server.file_problem is not None:
                    break
                await asyncio.sleep(0.02)
        assert server.file_problem is not None
        assert "LUMID_ACL_DB_PATH" in caplog.text
        assert "replaced" in caplog.text
        check = check_database_identity(path)
        assert check is not None
        assert check.status is Status.FAIL
        assert f"pid {os.getpid()}" in check.detail
        assert check.env_var == "LUMID_ACL_DB_PATH"
        seen, db = await check_database(path)  # what `lumid doctor` runs
        assert db is not None
        await db.close()
        assert seen.status is Status.FAIL
        assert "no longer names" in seen.detail
    finally:
        await server.close()
    assert list(servers_dir(path).glob("*.json")) == []  # removed at close
    assert check_database_identity(path) is None


async def test_a_deleted_file_is_noticed_on_the_next_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gone.sqlite"
    db = await Database.open(path)
    try:
        store = SqliteGrantStore(db)
        os.unlink(path)
        with caplog.at_level(logging.ERROR, "lumid_core.db"):
            await store.grant("workflow", "w", "alice", Level.WRITE)
        assert db.file_problem is not None
        assert "deleted" in db.file_problem
        assert "LUMID_ACL_DB_PATH" in caplog.text
    finally:
        await db.close()


def test_a_record_of_a_dead_process_is_stale_not_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    sqlite3.connect(path).close()
    folder = servers_dir(path)
    folder.mkdir()
    import json
    import socket

    (folder / "old.json").write_text(
        json.dumps(
            {"pid": 2**22 + 12345, "host": socket.gethostname(), "dev": 1, "ino": 2, "opened_at": 0}
        )
    )
    assert check_database_identity(path) is None
    (folder / "elsewhere.json").write_text(
        json.dumps({"pid": 1, "host": "another-host", "dev": 1, "ino": 2, "opened_at": 0})
    )
    check = check_database_identity(path)
    assert check is not None
    assert check.status is Status.WARN

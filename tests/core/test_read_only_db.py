"""`ReadOnlyDatabase`: reads as the server does, never writes, never migrates."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lumid_core import Database, DatabaseError, Level, SqliteGrantStore
from lumid_core.dbreadonly import ReadOnlyDatabase
from lumid_core.outbox import Outbox


async def test_reads_work_and_every_write_is_refused(db_path: Path) -> None:
    db = await Database.open(db_path)
    await SqliteGrantStore(db).grant("workflow", "wf-1", "alice", Level.WRITE)
    await db.close()
    ro = await ReadOnlyDatabase.open_read_only(db_path)
    try:
        store = SqliteGrantStore(ro)
        assert await store.level("workflow", "wf-1", "alice") is Level.WRITE
        assert await store.ids("workflow", "alice", Level.READ) == {"wf-1"}
        assert (await Outbox(ro, "runmesh").stats()).pending == 0
        with pytest.raises(DatabaseError, match="read-only"):
            await store.grant("workflow", "wf-2", "alice", Level.READ)
        with pytest.raises(DatabaseError, match="read-only"):
            await store.revoke("workflow", "wf-1", "alice")
    finally:
        await ro.close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM grants").fetchone()[0] == 1


async def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nothing.sqlite"
    with pytest.raises(DatabaseError, match="no database there"):
        await ReadOnlyDatabase.open_read_only(path, env_var="LUMID_ACL_DB_PATH")
    assert not path.exists()


async def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(DatabaseError, match=r"LUMID_ACL_DB_PATH=.*not a SQLite database"):
        await ReadOnlyDatabase.open_read_only(path)

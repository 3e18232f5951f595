"""Opening a lumid-plugins 0.2.x database migrates its `acl_grants` into `grants`."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lumid_core import Database, DatabaseError, Level, SqliteGrantStore, legacy
from lumid_fakes.legacy_db import LegacyRow, iso, write_legacy_db

T0 = time.time() - 90 * 86_400  # months of grants
ROWS = [
    ("workflow", "w1", "alice", 2, iso(T0), iso(T0 + 10)),
    ("task", "t1", "alice", 2, iso(T0 + 1), iso(T0 + 11)),
    ("workflow", "w2", "bob", 2, iso(T0 + 2), iso(T0 + 12)),
    ("workflow", "w1", "carol", 1, iso(T0 + 3), iso(T0 + 13)),
    ("job", "j1", "dave", 2, iso(T0 + 4), iso(T0 + 14)),
]


def dump(path: Path, table: str = "grants") -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()  # noqa: S608
    finally:
        conn.close()


def names(path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()


@pytest.mark.parametrize("layout", ["0.2.0", "0.2.1"])
async def test_both_layouts_migrate_on_open(db_path: Path, layout: str) -> None:
    write_legacy_db(db_path, ROWS, layout=layout)  # type: ignore[arg-type]
    before = time.time()
    db = await Database.open(db_path)
    try:
        moved = db.legacy_migration
        assert moved is not None
        assert (moved.rows, moved.added, moved.archived_as) == (5, 5, "acl_grants_migrated_0_2")
        assert moved.layout == ("0.2.0" if layout == "0.2.0" else "0.2.1+")
        store = SqliteGrantStore(db)
        assert await store.level("workflow", "w1", "alice") is Level.WRITE
        assert await store.level("workflow", "w1", "carol") is Level.READ
        assert await store.level("job", "j1", "dave") is Level.WRITE
        assert await store.ids("workflow", "alice", Level.READ) == {"w1"}
        grants = {(g.kind, g.id, g.principal_id): g async for g in store.iter_grants()}
        w1 = grants[("workflow", "w1", "alice")]
        assert w1.granted_at == pytest.approx(T0)
        # 0.2.0 has no last_seen_at: it is the grant time.
        assert w1.last_seen_at == pytest.approx(T0 if layout == "0.2.0" else T0 + 10)
        assert all(g.last_seen_at < before for g in grants.values())
    finally:
        await db.close()
    tables = names(db_path)
    assert "acl_grants" not in tables
    assert "ix_acl_grants_principal_kind" not in tables  # a later 0.2.x index won't collide
    assert {"acl_grants_migrated_0_2", "ix_acl_grants_migrated_0_2_principal_kind"} <= tables
    assert len(dump(db_path, "acl_grants_migrated_0_2")) == 5  # kept for a rollback
    (record,) = dump(db_path, "legacy_migrations")
    assert record[:5] == ("acl_grants_migrated_0_2", "acl_grants", moved.layout, 5, 5)


async def test_existing_grants_keep_the_higher_level(db_path: Path) -> None:
    db = await Database.open(db_path)
    store = SqliteGrantStore(db)
    await store.grant("workflow", "w1", "carol", Level.WRITE)  # higher than 0.2.x's READ
    await store.grant("workflow", "w2", "bob", Level.READ)  # lower than 0.2.x's WRITE
    await store.grant("workflow", "w9", "erin", Level.READ)  # only in the new table
    await db.close()
    write_legacy_db(db_path, ROWS)  # both tables now, overlapping
    db = await Database.open(db_path)
    try:
        moved = db.legacy_migration
        assert moved is not None
        assert (moved.rows, moved.added) == (5, 3)
        store = SqliteGrantStore(db)
        assert await store.level("workflow", "w1", "carol") is Level.WRITE
        assert await store.level("workflow", "w2", "bob") is Level.WRITE
        assert await store.level("workflow", "w9", "erin") is Level.READ
        bob = [g async for g in store.iter_grants(kind="workflow", id="w2")]
        assert bob[0].granted_at == pytest.approx(T0 + 2)  # the earliest grant time
        assert bob[0].last_seen_at > T0 + 12  # the latest sighting
    finally:
        await db.close()


async def test_second_open_changes_nothing(db_path: Path) -> None:
    write_legacy_db(db_path, ROWS)
    db = await Database.open(db_path)
    await db.close()
    grants, migrated = dump(db_path), dump(db_path, "legacy_migrations")
    first = db_path.read_bytes()
    db = await Database.open(db_path)
    assert db.legacy_migration is None
    await db.close()
    assert dump(db_path) == grants
    assert dump(db_path, "legacy_migrations") == migrated
    assert db_path.read_bytes() == first


async def test_reconcile_sweeps_migrated_grants_like_new_ones(db_path: Path) -> None:
    write_legacy_db(db_path, ROWS)
    db = await Database.open(db_path)
    try:
        store = SqliteGrantStore(db)
        result = await store.reconcile([("workflow", "w1")])  # w2 is gone
        assert result.removed == 1
        assert await store.level("workflow", "w2", "bob") is None
        assert await store.level("workflow", "w1", "alice") is Level.WRITE
        assert await store.level("workflow", "w1", "carol") is Level.READ
        assert await store.level("task", "t1", "alice") is Level.WRITE  # kind not swept
    finally:
        await db.close()


BAD = [
    (("workflow", "w3", "bob", 2, "yesterday", iso(T0)), "granted_at 'yesterday'"),
    (("workflow", "w3", "bob", 7, iso(T0), iso(T0)), "level 7"),
    (("workflow", "w3", "bob", 2, iso(T0), "2026-13-45T00:00:00+00:00"), "last_seen_at"),
    (("workflow", "w3", "bob", 2, None, iso(T0)), "granted_at None"),
    (("workflow", "w3", "bob", 2, iso(time.time() + 10 * 86_400), iso(T0)), "in the future"),
]


@pytest.mark.parametrize(("row", "why"), BAD, ids=[b[1] for b in BAD])
async def test_a_bad_row_fails_naming_the_variable_and_its_key(
    db_path: Path, row: LegacyRow, why: str
) -> None:
    # Two bad rows: the first in key order is named.
    later_bad = ("workflow", "w4", "zed", 9, "never", "never")
    write_legacy_db(db_path, [*ROWS, later_bad, row])
    original = db_path.read_bytes()
    with pytest.raises(DatabaseError) as caught:
        await Database.open(db_path)
    message = str(caught.value)
    assert message.startswith(f"LUMID_ACL_DB_PATH={str(db_path)!r}: ")
    assert "row (kind='workflow', id='w3', principal_id='bob')" in message
    assert why in message
    assert "w4" not in message
    assert "left unchanged" in message
    assert db_path.read_bytes() == original
    assert "grants" not in names(db_path)


async def test_a_table_of_another_shape_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE acl_grants (who TEXT, what TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match=r"LUMID_ACL_DB_PATH=.*not a lumid-plugins 0\.2\.x"):
        await Database.open(db_path)


async def test_a_failure_mid_copy_leaves_the_wal_file_untouched(db_path: Path) -> None:
    """A current (WAL) database that a 0.2.x also wrote into; a trigger fails the copy."""
    db = await Database.open(db_path)
    await SqliteGrantStore(db).grant("workflow", "w0", "alice", Level.WRITE)
    await db.close()
    write_legacy_db(db_path, ROWS)
    conn = sqlite3.connect(db_path)
    conn.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON grants WHEN NEW.id = 'w2' "
        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    )
    conn.commit()
    conn.close()
    original, grants = db_path.read_bytes(), dump(db_path)
    with pytest.raises(DatabaseError) as caught:
        await Database.open(db_path)
    assert str(caught.value).startswith(f"LUMID_ACL_DB_PATH={str(db_path)!r}: ")
    assert "injected failure" in str(caught.value)
    assert db_path.read_bytes() == original
    assert dump(db_path) == grants
    assert len(dump(db_path, "acl_grants")) == len(ROWS)


async def test_a_failure_after_the_copy_leaves_a_0_2_file_byte_identical(db_path: Path) -> None:
    """A rollback-journal 0.2.x file; the rename fails (a trigger that cannot survive it)."""
    write_legacy_db(db_path, ROWS)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TRIGGER boom AFTER INSERT ON acl_grants BEGIN SELECT * FROM nowhere; END")
    conn.commit()
    conn.close()
    original = db_path.read_bytes()
    with pytest.raises(DatabaseError, match=r"LUMID_ACL_DB_PATH=.*0\.2\.x grants failed"):
        await Database.open(db_path)
    assert db_path.read_bytes() == original
    assert not Path(f"{db_path}-wal").exists() or Path(f"{db_path}-wal").stat().st_size == 0
    # Fixed by hand, the next start migrates.
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TRIGGER boom")
    conn.commit()
    conn.close()
    db = await Database.open(db_path)
    assert db.legacy_migration is not None
    assert db.legacy_migration.rows == len(ROWS)
    await db.close()


async def test_a_second_0_2_table_gets_its_own_archive_name(db_path: Path) -> None:
    """Rolled back to 0.2.x without renaming back, then upgraded again."""
    write_legacy_db(db_path, ROWS[:2])
    await (await Database.open(db_path)).close()
    write_legacy_db(db_path, ROWS[2:])  # 0.2.x created a fresh acl_grants and index
    db = await Database.open(db_path)
    try:
        assert db.legacy_migration is not None
        assert db.legacy_migration.archived_as == "acl_grants_migrated_0_2_2"
        assert await SqliteGrantStore(db).level("job", "j1", "dave") is Level.WRITE
    finally:
        await db.close()
    assert {"acl_grants_migrated_0_2", "acl_grants_migrated_0_2_2"} <= names(db_path)
    assert len(dump(db_path, "legacy_migrations")) == 2


def test_read_rows_reads_an_unmigrated_file_read_only(db_path: Path) -> None:
    write_legacy_db(db_path, ROWS, layout="0.2.0")
    original = db_path.read_bytes()
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = list(legacy.read_rows(conn))
        state = legacy.status(conn)
    finally:
        conn.close()
    assert [(r.kind, r.id, r.principal_id, r.level) for r in rows] == sorted(
        (r[0], r[1], r[2], r[3]) for r in ROWS
    )
    assert rows[0].granted_at == pytest.approx(T0 + 1)  # (task, t1, alice) sorts first
    assert (state.pending_rows, state.pending_layout, state.migrations) == (5, "0.2.0", ())
    assert db_path.read_bytes() == original


async def test_rolled_back_by_hand_then_upgraded_again(db_path: Path) -> None:
    """docs/upgrading.md's rollback (rename back, index back), then a new upgrade."""
    write_legacy_db(db_path, ROWS)
    await (await Database.open(db_path)).close()
    conn = sqlite3.connect(db_path)
    conn.executescript(
        "BEGIN; ALTER TABLE acl_grants_migrated_0_2 RENAME TO acl_grants; "
        "DROP INDEX ix_acl_grants_migrated_0_2_principal_kind; "
        "CREATE INDEX ix_acl_grants_principal_kind ON acl_grants (principal_id, kind); COMMIT;"
    )
    conn.close()
    write_legacy_db(db_path, [("workflow", "w7", "alice", 2, iso(T0), iso(T0))])  # 0.2.x again
    db = await Database.open(db_path)
    try:
        moved = db.legacy_migration
        assert moved is not None
        assert (moved.rows, moved.added, moved.archived_as) == (6, 1, "acl_grants_migrated_0_2_2")
        assert await SqliteGrantStore(db).level("workflow", "w7", "alice") is Level.WRITE
    finally:
        await db.close()


async def open_and_close(path: Path) -> legacy.Migrated | None:
    db = await Database.open(path)
    await db.close()
    return db.legacy_migration


def test_a_process_killed_mid_copy_leaves_the_file_and_the_next_start_migrates(
    db_path: Path,
) -> None:
    """A real crash: SIGKILL while the copy runs (a slow trigger keeps it running)."""
    asyncio.run(open_and_close(db_path))
    write_legacy_db(
        db_path, [("workflow", f"w{i:03}", "alice", 2, iso(T0), iso(T0)) for i in range(300)]
    )
    conn = sqlite3.connect(db_path)
    conn.execute(
        "CREATE TRIGGER slow AFTER INSERT ON grants BEGIN SELECT count(*) FROM ("
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) "
        "SELECT x FROM c); END"
    )
    conn.commit()
    conn.close()
    original, before = db_path.read_bytes(), dump(db_path)
    child = subprocess.Popen(  # noqa: S603 (our own interpreter)
        [
            sys.executable,
            "-c",
            "import asyncio, sys; from lumid_core import Database; "
            "asyncio.run(Database.open(sys.argv[1]))",
            str(db_path),
        ]
    )
    try:
        probe = sqlite3.connect(db_path, timeout=0, isolation_level=None)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the child holds the write lock
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
            except sqlite3.OperationalError:
                break
            assert child.poll() is None, "the child finished before it could be killed"
            time.sleep(0.01)
        else:
            pytest.fail("the child never started the migration")
        probe.close()
        time.sleep(0.3)  # well inside the copy (300 slow inserts take seconds)
        assert child.poll() is None
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert db_path.read_bytes() == original
    assert dump(db_path) == before
    assert len(dump(db_path, "acl_grants")) == 300
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TRIGGER slow")
    conn.commit()
    conn.close()
    moved = asyncio.run(open_and_close(db_path))
    assert moved is not None
    assert moved.rows == 300

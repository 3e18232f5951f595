"""First sight of a principal: its email is written behind the request, never waited for."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lumid_core import Database, LumidSettings, load_settings
from lumid_core.directory import SqlitePrincipalDirectory, WriteBehindDirectory
from lumid_core.runtime import CoreRuntime, open_runtime
from lumid_fakes import FakeLumId


def _sqlite(rt: CoreRuntime) -> Database:
    """The runtime's SQLite database (these tests never set LUMID_DATABASE_URL)."""
    assert isinstance(rt.db, Database)
    return rt.db


@pytest.fixture
def write_lock(db_path: Path) -> Iterator[sqlite3.Connection]:
    """Another process-like connection holding the database's write lock (not yet taken)."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def _emails(db_path: Path) -> dict[str, str]:
    conn = sqlite3.connect(db_path)
    try:
        return dict(conn.execute("SELECT principal_id, email FROM principals").fetchall())
    finally:
        conn.close()


async def test_a_first_login_does_not_wait_for_the_disk(
    runtime: CoreRuntime,
    fake_lumid: FakeLumId,
    write_lock: sqlite3.Connection,
    logger: logging.Logger,
    db_path: Path,
) -> None:
    # The write lock is held (a CLI import mid-transaction): a durable email write
    # would wait the 5 s busy timeout. Before, the login waited with it.
    tokens = [fake_lumid.add_token(f"fs-{i}", email=f"fs{i}@example.com") for i in range(3)]
    write_lock.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    for token in tokens:
        assert await runtime.identity.resolve(token, logger) is not None
    assert time.monotonic() - started < 2
    # Billing reads its own pending writes: a row emitted now gets its email.
    assert await runtime.directory.email_for("fs-0") == "fs0@example.com"
    assert runtime.directory.pending == 3
    write_lock.execute("ROLLBACK")
    await runtime.directory.flush()
    assert runtime.directory.pending == 0
    assert _emails(db_path) == {f"fs-{i}": f"fs{i}@example.com" for i in range(3)}
    assert await runtime.directory.email_for("fs-2") == "fs2@example.com"


async def test_queued_emails_are_written_at_shutdown(
    core_env: dict[str, str], fake_lumid: FakeLumId, logger: logging.Logger, db_path: Path
) -> None:
    settings = load_settings(LumidSettings)
    tokens = [fake_lumid.add_token(f"sd-{i}", email=f"sd{i}@example.com") for i in range(50)]
    async with open_runtime(settings, plugin="tests", logger=logger) as rt:
        for token in tokens:
            await rt.identity.resolve(token, logger)
        assert rt.directory.pending > 0  # nothing has waited for them yet
    assert _emails(db_path) == {f"sd-{i}": f"sd{i}@example.com" for i in range(50)}


async def test_a_full_queue_drops_loudly_and_never_blocks(
    runtime: CoreRuntime,
    write_lock: sqlite3.Connection,
    caplog: pytest.LogCaptureFixture,
    db_path: Path,
) -> None:
    directory = WriteBehindDirectory(
        SqlitePrincipalDirectory(_sqlite(runtime)), max_pending=2, memo_size=10
    )
    write_lock.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="lumid_core.directory"):
        for i in range(6):
            await directory.record(f"q-{i}", f"q{i}@example.com")
    assert time.monotonic() - started < 1
    # Two wait in the queue, the first batch (taken at once) is being written.
    assert directory.dropped >= 3
    assert "LUMID_EMAIL_QUEUE_SIZE" in caplog.text
    assert await directory.email_for("q-0") == "q0@example.com"
    write_lock.execute("ROLLBACK")
    await directory.aclose()
    written = _emails(db_path)
    assert "q-0" in written
    assert len(written) == 6 - directory.dropped


async def test_the_memo_is_bounded_and_skips_unchanged_emails(runtime: CoreRuntime) -> None:
    directory = WriteBehindDirectory(SqlitePrincipalDirectory(_sqlite(runtime)), memo_size=3)
    for i in range(10):
        await directory.record(f"m-{i}", f"m{i}@example.com")
    await directory.flush()
    assert len(directory._memo) == 3  # was one entry per principal ever seen
    await directory.record("m-9", "m9@example.com")  # unchanged, recent: no write queued
    assert directory.pending == 0
    await directory.record("m-0", "m0@example.com")  # forgotten by the memo: written again
    assert directory.pending == 1
    await directory.record("m-9", "new9@example.com")  # changed: written
    await directory.flush()
    assert await directory.email_for("m-9") == "new9@example.com"
    assert _sqlite(runtime).read_one("SELECT email FROM principals WHERE principal_id = 'm-9'") == (
        "new9@example.com",
    )

"""`Database.write`: an idle writer starts at once; writes queued behind it share a commit."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lumid_core.db import Database

_INSERT = "INSERT INTO principals (principal_id, email, last_seen_at) VALUES (?, ?, 0)"


class CountingDatabase(Database):
    """The real database, counting its group commits."""

    commits = 0

    async def _apply(self, batch: Any) -> None:
        self.commits += 1
        await super()._apply(batch)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[CountingDatabase]:
    plain = await Database.open(tmp_path / "writes.sqlite")
    await plain.close()
    database = await CountingDatabase.open(tmp_path / "writes.sqlite")
    assert isinstance(database, CountingDatabase)
    yield database
    await database.close()


def _rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM principals").fetchone()[0])
    finally:
        conn.close()


async def test_a_write_to_an_idle_writer_commits_without_waiting_for_the_loop(
    db: CountingDatabase,
) -> None:
    pending = db.write(_INSERT, ("p0", "p0@x.io"))
    # Block the event loop: the statement was handed to the writer's thread inside
    # write(), so it commits meanwhile (a flusher waiting for a loop turn would not).
    deadline = time.monotonic() + 5
    while _rows(db.path) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # noqa: ASYNC251 (blocking the loop is the point)
    assert _rows(db.path) == 1
    assert await pending == 1


async def test_writes_queued_behind_a_commit_share_the_next_one(db: CountingDatabase) -> None:
    first = db.write(_INSERT, ("p0", "p0@x.io"))
    rest = [db.write(_INSERT, (f"p{i}", f"p{i}@x.io")) for i in range(1, 51)]
    assert await asyncio.gather(first, *rest) == [1] * 51
    assert db.commits == 2  # the first alone, at once; the fifty queued behind it together
    assert _rows(db.path) == 51

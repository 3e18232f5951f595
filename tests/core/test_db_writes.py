"""`Database.write`: writes of one loop turn share a commit that starts on the next turn."""

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


async def test_a_lone_write_reaches_the_writer_on_the_next_loop_turn(
    db: CountingDatabase,
) -> None:
    pending = db.write(_INSERT, ("p0", "p0@x.io"))
    seen: list[int] = []

    def next_turn_blocked() -> None:
        # Runs on the next turn right after the flusher's first step; the loop is
        # blocked here, so the row can only commit if that step already handed it to
        # the writer's thread (no second turn to wait for).
        deadline = time.monotonic() + 5
        while _rows(db.path) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(_rows(db.path))

    asyncio.get_running_loop().call_soon(next_turn_blocked)
    assert await pending == 1
    assert seen == [1]


async def test_concurrent_writers_share_one_commit_per_round(db: CountingDatabase) -> None:
    async def writer(i: int) -> None:
        for r in range(5):
            assert await db.write(_INSERT, (f"p{i}-{r}", "x@x.io")) == 1

    await asyncio.gather(*(writer(i) for i in range(64)))
    # 64 callers resumed together write in the same turn: one commit for each round.
    assert db.commits == 5
    assert _rows(db.path) == 320

"""`lumid acl import` never holds the write lock long (issue 16): small batches, each
bounded, so a stopped or slow import stalls no other writer between batches."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

GRANTS = 40_000


def _source(tmp_path: Path, n: int = GRANTS) -> Path:
    path = tmp_path / "grants.jsonl"
    with path.open("w") as out:
        for i in range(n):
            grant = {"kind": "workflow", "id": f"w{i}", "principal_id": "p", "level": "read"}
            out.write(json.dumps(grant) + "\n")
    return path


async def _create(db: Path) -> None:
    from lumid_core import Database

    await (await Database.open(db)).close()


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM grants").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def _import(cli_env: dict[str, str], source: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "lumid_core.cli", "acl", "import", "--any-kind", str(source)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _can_write(db: Path, within: float) -> bool:
    conn = sqlite3.connect(db, timeout=within, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def test_a_stopped_import_between_batches_stalls_no_writer(
    cli_env: dict[str, str], db_path: Path, tmp_path: Path
) -> None:
    proc = _import(cli_env, _source(tmp_path))
    try:
        deadline = time.monotonic() + 60
        while _count(db_path) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the import finished before it could be stopped"
        # SIGSTOP (what Ctrl-Z sends) at some moments: most land between batches,
        # where the lock is free; one inside a batch is the documented exception.
        free = 0
        for _ in range(10):
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                if _can_write(db_path, within=0.5):
                    free += 1
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.03)
            if proc.poll() is not None:
                break
        assert free >= 1, "every stop left the write lock held"
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert f"imported {GRANTS} grants" in out
    assert _count(db_path) == GRANTS


def test_a_batch_that_cannot_finish_in_time_is_rolled_back_and_retried_smaller(
    cli_env: dict[str, str], db_path: Path, tmp_path: Path
) -> None:
    """Another writer takes the lock for 1.5 s mid-import: the batch waiting for it
    passes its deadline, is rolled back, retried in halves, and every grant lands."""
    asyncio.run(_create(db_path))
    holder = sqlite3.connect(db_path, isolation_level=None)
    proc = _import(cli_env, _source(tmp_path))
    try:
        deadline = time.monotonic() + 60
        while _count(db_path) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        holder.execute("BEGIN IMMEDIATE")
        time.sleep(1.5)
        holder.execute("ROLLBACK")
        out, err = proc.communicate(timeout=120)
    finally:
        holder.close()
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert "rolled back, retrying in halves" in err
    assert f"imported {GRANTS} grants" in out
    assert _count(db_path) == GRANTS


@pytest.mark.parametrize("hold", [30.0])
def test_a_writer_holding_the_lock_for_good_fails_the_import_cleanly(
    cli_env: dict[str, str], db_path: Path, tmp_path: Path, hold: float
) -> None:
    asyncio.run(_create(db_path))
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        proc = _import(cli_env, _source(tmp_path, 4))
        out, err = proc.communicate(timeout=hold)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err
    assert "LUMID_ACL_DB_PATH=" in err
    assert "locked" in err
    assert _count(db_path) == 0

"""Another process holds SQLite's write lock (a `lumid acl import` stopped with Ctrl-Z):
registers answer 503, no billing row is dropped, install() waits (issue 16)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException
from lumid_hooks import PrincipalContext, ResourceRef

import lumid_core.db
from lumid_core import DatabaseError
from lumid_fakes import FakeLumId, FakeRunmesh
from lumid_flowmesh_plugin import FlowMeshBindings, install

_HOLDER = """
import os, signal, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
hold = float(sys.argv[2])
if hold < 0:
    os.kill(os.getpid(), signal.SIGSTOP)  # what Ctrl-Z does, with the lock held
else:
    time.sleep(hold)
conn.execute("ROLLBACK")
"""


@contextmanager
def write_lock_held(path: Path, hold: float = -1.0) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the write lock of the database at `path`: stopped by
    SIGSTOP (`hold < 0`, `resume()` lets it roll back and exit) or for `hold` s."""
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed script)
        [sys.executable, "-c", _HOLDER, str(path), str(hold)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        resume(proc)
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def resume(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)


def alice() -> PrincipalContext:
    return PrincipalContext(
        principal_id="alice",
        org_id="lumid",
        external_id="alice",
        principal_type="user",
        scopes=["flowmesh:workflows:write", "flowmesh:workflows:read"],
    )


async def wait_for(predicate: Callable[[], Any], within: float) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 (polls a fake server's thread)
            await asyncio.sleep(0.02)


async def test_register_answers_503_with_retry_after_never_a_database_error(
    plugin: FlowMeshBindings, db_path: Path, logger: logging.Logger
) -> None:
    (registrar,) = plugin.resource_registrars
    (engine,) = plugin.permission_checkers
    await registrar.register(alice(), ResourceRef(kind="workflow", id="wf-1"), logger)
    with write_lock_held(db_path):
        started = time.monotonic()
        for ref in (
            ResourceRef(kind="workflow", id="wf-2"),
            ResourceRef(kind="task", id="t-2", metadata={"workflow_id": "wf-2"}),
        ):
            with pytest.raises(HTTPException) as caught:
                await registrar.register(alice(), ref, logger)
            assert caught.value.status_code == 503
            assert caught.value.headers == {"Retry-After": "5"}
            assert "LUMID_ACL_DB_PATH" not in str(caught.value.detail)  # no path to clients
        assert time.monotonic() - started < 30  # bounded: the busy timeout, twice
        # Reads never wait for a writer (WAL): checks keep answering meanwhile.
        await engine.require(alice(), ResourceRef(kind="workflow", id="wf-1"), "read", logger)
    await registrar.register(alice(), ResourceRef(kind="workflow", id="wf-2"), logger)
    await engine.require(alice(), ResourceRef(kind="workflow", id="wf-2"), "read", logger)


async def test_require_answers_503_when_the_store_cannot_be_read(
    plugin: FlowMeshBindings, logger: logging.Logger
) -> None:
    (engine,) = plugin.permission_checkers
    assert plugin.billing is not None
    await plugin.billing.outbox.db.close()  # the store is gone under the engine
    with pytest.raises(HTTPException) as caught:
        await engine.require(alice(), ResourceRef(kind="workflow", id="wf-1"), "read", logger)
    assert caught.value.status_code == 503
    assert caught.value.headers == {"Retry-After": "5"}


async def test_emit_keeps_rows_in_memory_until_the_lock_is_released(
    plugin: FlowMeshBindings,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    db_path: Path,
    usage_row: Callable[..., Any],
    logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_runmesh.add_user("alice@example.com", "100")
    token = fake_lumid.add_token("alice", email="alice@example.com")
    assert await plugin.identity_providers[0].resolve(token, logger) is not None
    billing = plugin.billing
    assert billing is not None
    (sink,) = plugin.usage_sinks
    with write_lock_held(db_path) as holder, caplog.at_level(logging.WARNING):
        started = time.monotonic()
        await sink.emit([usage_row("t-stalled", cost=Decimal("2.5"))], logger)
        assert time.monotonic() - started < 10  # bounded wait, then the row waits in memory
        assert len(billing.sink.spool) == 1
        started = time.monotonic()
        await sink.emit([usage_row("t-behind", cost=Decimal("1"))], logger)
        assert time.monotonic() - started < 1  # behind rows already waiting: no wait
        assert len(billing.sink.spool) == 2
        assert "wait in memory" in caplog.text
        assert "LUMID_ACL_DB_PATH" in caplog.text
        assert "could not queue" not in caplog.text
        await asyncio.sleep(1)
        assert fake_runmesh.entries == {}
        resume(holder)  # fg: the import rolls back and ends
        await wait_for(lambda: len(fake_runmesh.entries) == 2, within=30)
    assert sorted(fake_runmesh.entries) == ["t-behind", "t-stalled"]
    assert fake_runmesh.balances["alice@example.com"] == Decimal("96.5")
    assert len(billing.sink.spool) == 0
    assert await billing.drain(10)
    assert "durable now" in caplog.text


async def test_spool_bound_logs_each_refused_row_with_task_and_cost(
    flowmesh_env: dict[str, str],
    db_path: Path,
    usage_row: Callable[..., Any],
    logger: logging.Logger,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("LUMID_BILLING_SPOOL_ROWS", "1")
    monkeypatch.setenv("LUMID_BILLING_FLUSH_SECONDS", "0")
    async with install() as plugin:
        (sink,) = plugin.usage_sinks
        with write_lock_held(db_path), caplog.at_level(logging.ERROR):
            await sink.emit(
                [usage_row("t-kept"), usage_row("t-over", cost=Decimal("7.25"))], logger
            )
            assert "usage row LOST" in caplog.text
            assert "task t-over cost 7.25" in caplog.text
            assert "t-kept" not in caplog.text
    # Shutdown with the lock still held and no flush budget: the kept row is logged too.
    assert "lost at shutdown" in caplog.text
    assert "task t-kept cost 0.25" in caplog.text


async def test_install_waits_for_a_lock_held_a_few_seconds(
    flowmesh_env: dict[str, str], db_path: Path
) -> None:
    async with install():
        pass  # the database exists, as on any start after the first
    with write_lock_held(db_path, hold=7.0):  # longer than the 5 s busy timeout
        async with install() as plugin:
            assert plugin.permission_checkers


async def test_install_names_the_variable_after_the_bounded_wait(
    flowmesh_env: dict[str, str], db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with install():
        pass
    monkeypatch.setattr(lumid_core.db, "OPEN_BUSY_TIMEOUT_MS", 1000)
    with write_lock_held(db_path), pytest.raises(DatabaseError) as caught:
        async with install():
            pass
    message = str(caught.value)
    assert "LUMID_ACL_DB_PATH" in message
    assert "write lock for more than 1 s" in message

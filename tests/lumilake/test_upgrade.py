"""Upgrading a Lumilake server from lumid-plugins 0.2.x: its env block and grants."""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import AsyncExitStack
from pathlib import Path

import lumilake_hook
import pytest
from lumid_hooks import PrincipalContext, ResourceRef

from lumid_fakes import FakeLumId, FakeOptimizer
from lumid_fakes.legacy_db import LUMILAKE_BLOCK, dotenv, iso, write_legacy_db
from lumid_lumilake_plugin import install as lumilake_install

RUNTIME_TOKEN = "runtime-SECRET-93be1d"
T0 = time.time() - 7 * 86_400


async def test_the_lumilake_block_installs(
    fake_lumid: FakeLumId, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOptimizer(tokens=[RUNTIME_TOKEN]) as optimizer:
        env = dotenv(
            LUMILAKE_BLOCK,
            lumid=fake_lumid.url,
            db=str(db_path),
            optimizer=optimizer.url,
            token=RUNTIME_TOKEN,
        )
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        write_legacy_db(db_path, [("job", "j1", "alice", 2, iso(T0), iso(T0))])
        async with AsyncExitStack() as stack:
            bindings = await stack.enter_async_context(lumilake_install())
            assert isinstance(bindings, lumilake_hook.BaseBindings)
            assert bindings.optimizer_providers  # the remote optimizer is on
            (checker,) = bindings.permission_checkers
            alice = PrincipalContext(
                principal_id="alice",
                org_id="lumid",
                external_id="alice",
                principal_type="user",
                scopes=["lumilake:jobs:submit"],
            )
            await checker.require(
                alice, ResourceRef(kind="job", id="j1"), "read", logging.getLogger()
            )
        assert optimizer.catalog_calls()[0].headers["authorization"] == f"Bearer {RUNTIME_TOKEN}"


async def test_the_0_2_0_lumilake_database_variable_still_points_at_its_grants(
    fake_lumid: FakeLumId, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Early 0.2.x kept Lumilake's grants in LUMID_LUMILAKE_ACL_DB_PATH's file."""
    old = tmp_path / "plugin-data" / "lumid_lumilake_acl.sqlite"
    write_legacy_db(old, [("job", "j1", "alice", 2, iso(T0), iso(T0))])
    monkeypatch.delenv("LUMID_ACL_DB_PATH", raising=False)
    monkeypatch.setenv("LUMID_LUMILAKE_ACL_DB_PATH", str(old))
    monkeypatch.setenv("LUM_ID_BASE_URL", fake_lumid.url)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(lumilake_install())
    conn = sqlite3.connect(old)
    try:
        assert conn.execute("SELECT kind, id, principal_id, level FROM grants").fetchall() == [
            ("job", "j1", "alice", 2)
        ]
    finally:
        conn.close()

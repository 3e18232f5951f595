"""Upgrading a Lumilake server from lumid-plugins 0.2.x: its env block and grants."""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import lumilake_hook
import pytest
from lumid_hooks import PrincipalContext, ResourceRef

from lumid_core import load_settings
from lumid_fakes import FakeLumId, FakeOptimizer
from lumid_fakes.legacy_db import iso, lumilake_block, write_legacy_db
from lumid_lumilake_plugin import install as lumilake_install
from lumid_lumilake_plugin.settings import LumilakeSettings

if TYPE_CHECKING:
    from tests.conftest import Allowed

RUNTIME_TOKEN = "runtime-SECRET-93be1d"
T0 = time.time() - 7 * 86_400


LEGACY = [  # 0.2.1+: Lumilake's kinds job, trace, artifact in the shared table name
    ("job", "j1", "alice", 2, iso(T0), iso(T0 + 1)),
    ("trace", "tr1", "alice", 2, iso(T0), iso(T0 + 1)),
    ("artifact", "j1/out.csv", "alice", 2, iso(T0), iso(T0 + 1)),
    ("job", "j2", "bob", 2, iso(T0 + 2), iso(T0 + 3)),
]


def who(sub: str, *scopes: str) -> PrincipalContext:
    return PrincipalContext(
        principal_id=sub,
        org_id="lumid",
        external_id=sub,
        principal_type="user",
        scopes=list(scopes),
    )


async def test_the_lumilake_block_installs_and_migrates(
    fake_lumid: FakeLumId,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    allowed: Allowed,
) -> None:
    with FakeOptimizer(tokens=[RUNTIME_TOKEN]) as optimizer:
        env = lumilake_block(
            lumid=fake_lumid.url, db=str(db_path), optimizer=optimizer.url, token=RUNTIME_TOKEN
        )
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        write_legacy_db(db_path, LEGACY)
        with caplog.at_level(logging.INFO, "lumid_lumilake_plugin"):
            async with AsyncExitStack() as stack:
                bindings = await stack.enter_async_context(lumilake_install())
                assert isinstance(bindings, lumilake_hook.BaseBindings)
                assert bindings.optimizer_providers  # the remote optimizer is on
                (checker,) = bindings.permission_checkers
                alice = who("alice", "lumilake:jobs:submit", "lumilake:trace:read")
                bob = who("bob", "lumilake:jobs:submit", "lumilake:jobs:cancel")
                assert await allowed(checker, alice, "job", "j1", "read")
                assert await allowed(checker, alice, "trace", "tr1", "read")
                assert await allowed(checker, alice, "artifact", "j1/out.csv", "read")
                assert not await allowed(checker, alice, "job", "j2", "read")
                assert not await allowed(checker, bob, "job", "j1", "read")
                assert not await allowed(checker, bob, "artifact", "j1/out.csv", "read")
                assert await allowed(checker, bob, "job", "j2", "cancel")
                assert not await allowed(checker, alice, "job", "j1", "cancel")  # no cancel scope
                log = logging.getLogger("t")
                assert await checker.accessible_ids(alice, "job", "read", log) == frozenset({"j1"})
                # Lumilake's startup reconcile: job refs only; j2 is gone, traces and
                # artifacts are never swept.
                (registrar,) = bindings.resource_registrars
                await registrar.reconcile([ResourceRef(kind="job", id="j1")], log)
                assert not await allowed(checker, bob, "job", "j2", "cancel")
                assert await allowed(checker, alice, "trace", "tr1", "read")
                assert await allowed(checker, alice, "artifact", "j1/out.csv", "read")
        assert optimizer.catalog_calls()[0].headers["authorization"] == f"Bearer {RUNTIME_TOKEN}"
    (line,) = [r for r in caplog.records if "from the lumid-plugins" in r.getMessage()]
    assert line.levelno == logging.INFO
    assert "migrated 4 grants" in line.getMessage()
    assert RUNTIME_TOKEN not in caplog.text


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


async def test_both_database_variables_set_to_different_files_is_a_warning(
    lumilake_env: dict[str, str],
    db_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = tmp_path / "plugin-data" / "lumid_lumilake_acl.sqlite"
    monkeypatch.setenv("LUMID_LUMILAKE_ACL_DB_PATH", str(old))
    with caplog.at_level(logging.INFO, "lumid_lumilake_plugin"):
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(lumilake_install())
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "LUMID_LUMILAKE_ACL_DB_PATH=" in warning.getMessage()
    assert "neither used nor migrated" in warning.getMessage()
    settings = load_settings(LumilakeSettings)
    assert settings.lumid_acl_db_path == db_path  # LUMID_ACL_DB_PATH wins
    monkeypatch.setenv("LUMID_LUMILAKE_ACL_DB_PATH", str(db_path))  # the same file: fine
    assert load_settings(LumilakeSettings).ignored_legacy_db_path is None

"""The FlowMesh plugin on the shared PostgreSQL store (LUMID_DATABASE_URL)."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import pytest
from lumid_hooks import ResourceRef

from lumid_core import SettingsError, load_settings
from lumid_core.errors import StoreError
from lumid_core.settings import LumidSettings
from lumid_fakes import FakeLumId, FakeRunmesh, PgCluster
from lumid_flowmesh_plugin import install

from .conftest import RowFactory


@pytest.fixture
def pg_env(flowmesh_env: dict[str, str], pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LUMID_DATABASE_URL", pg_url)
    monkeypatch.delenv("LUMID_ACL_DB_PATH")
    return pg_url


async def test_install_registers_checks_and_bills_on_postgresql(
    pg_env: str,
    pg_cluster: PgCluster,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("tests")
    token = fake_lumid.add_token("alice", scopes=["flowmesh:workflows:read"], email="a@x.io")
    fake_runmesh.add_user("a@x.io", "10")
    with caplog.at_level(logging.DEBUG):
        async with install() as plugin:
            alice = await plugin.identity_providers[0].resolve(token, log)
            assert alice is not None
            (registrar,) = plugin.resource_registrars
            (checker,) = plugin.permission_checkers
            await registrar.register(alice, ResourceRef(kind="workflow", id="w1"), log)
            await registrar.register(
                alice, ResourceRef(kind="task", id="t1", metadata={"workflow_id": "w1"}), log
            )
            assert await checker.accessible_ids(alice, "workflow", "read", log) == frozenset({"w1"})
            await plugin.usage_sinks[0].emit([usage_row("t1")], log)
            assert plugin.billing is not None
            assert await plugin.billing.drain(20)
    assert fake_runmesh.entries["t1"]["workflowId"] == "w1"
    assert fake_runmesh.entries["t1"]["userSub"] == "alice"
    conn = await asyncpg.connect(pg_env)
    try:
        assert await conn.fetchval("SELECT count(*) FROM lumid_grants") == 2
        assert await conn.fetchval("SELECT email FROM lumid_principals") == "a@x.io"
        state = await conn.fetchval("SELECT state FROM lumid_outbox WHERE key = 't1'")
        assert state == "delivered"
    finally:
        await conn.close()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert pg_cluster.password not in text
    assert "LUMID_ACL_DB_PATH is ignored" not in text
    (line,) = [r.getMessage() for r in caplog.records if "hooks on" in r.getMessage()]
    assert f"127.0.0.1:{pg_cluster.port}" in line


async def test_both_set_warns_once(
    pg_env: str, db_path: object, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LUMID_ACL_DB_PATH", str(db_path))
    with caplog.at_level(logging.WARNING):
        async with install():
            pass
    warned = [r for r in caplog.records if "LUMID_ACL_DB_PATH is ignored" in r.getMessage()]
    assert len(warned) == 1
    assert not db_path.exists()  # type: ignore[attr-defined]


async def test_unreachable_server_fails_install_fast_naming_the_variable(
    flowmesh_env: dict[str, str], pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = pg_cluster.url(password="s3cret-" + "x" * 12).replace(f":{pg_cluster.port}/", ":1/")
    monkeypatch.setenv("LUMID_DATABASE_URL", closed)
    started = time.monotonic()
    with pytest.raises(StoreError, match="LUMID_DATABASE_URL") as failed:
        async with install():
            pass
    assert time.monotonic() - started < 15
    assert "s3cret" not in str(failed.value)
    assert "cannot connect" in str(failed.value)


async def test_wrong_password_fails_install_without_echoing_it(
    flowmesh_env: dict[str, str], pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMID_DATABASE_URL", pg_cluster.url(password="wrong-pw-" + "y" * 10))
    with pytest.raises(StoreError, match="LUMID_DATABASE_URL") as failed:
        async with install():
            pass
    assert "authentication failed" in str(failed.value)
    assert "wrong-pw" not in str(failed.value)
    assert "***@127.0.0.1" in str(failed.value)


@pytest.mark.parametrize(
    "url", ["mysql://u:p@h/db", "http://h/db", "postgresql://", "sqlite:///tmp/x.db"]
)
def test_a_url_that_is_not_postgresql_names_the_variable(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMID_DATABASE_URL", url)
    with pytest.raises(SettingsError, match="LUMID_DATABASE_URL") as failed:
        load_settings(LumidSettings)
    assert "u:p" not in str(failed.value)


def test_the_url_is_hidden_in_repr_and_query_parameters_pass_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgres://app:pa55word-x@db.internal:5432/lumid?sslmode=require"
    monkeypatch.setenv("LUMID_DATABASE_URL", url)
    settings = load_settings(LumidSettings)
    assert settings.database_url == url
    assert "pa55word" not in repr(settings)
    assert "pa55word" not in str(settings.model_dump())
    assert settings.lumid_database_pool_size == 10
    assert settings.lumid_database_statement_timeout_seconds == 30.0


async def test_a_newer_schema_is_refused_naming_the_variable(
    flowmesh_env: dict[str, str], pg_env: str
) -> None:
    async with install():
        pass
    conn = await asyncpg.connect(pg_env)
    await conn.execute("INSERT INTO lumid_schema_version (version) VALUES (99)")
    await conn.close()
    with pytest.raises(StoreError, match=r"LUMID_DATABASE_URL=.*schema version 99 is newer"):
        async with install():
            pass


async def test_rows_held_on_one_replica_are_released_by_the_one_that_learns_the_email(
    pg_env: str, fake_lumid: FakeLumId, fake_runmesh: FakeRunmesh, usage_row: RowFactory
) -> None:
    log = logging.getLogger("tests")
    fake_runmesh.add_user("carol@x.io", "10")
    token = fake_lumid.add_token("carol", scopes=["flowmesh:workflows:read"], email="carol@x.io")
    async with install() as a, install() as b:
        await a.usage_sinks[0].emit([usage_row("t1", "carol"), usage_row("t2", "carol")], log)
        assert a.billing is not None
        assert b.billing is not None
        assert (await a.billing.stats()).held == 2
        assert fake_runmesh.entries == {}
        assert await b.identity_providers[0].resolve(token, log) is not None  # b learns it
        deadline = time.monotonic() + 20
        while (stats := await b.billing.stats()).delivered < 2:  # recorded after the post
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    assert sorted(fake_runmesh.entries) == ["t1", "t2"]
    assert (stats.held, stats.delivered) == (0, 2)
    assert fake_runmesh.duplicates == 0

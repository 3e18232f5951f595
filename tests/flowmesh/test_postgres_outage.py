"""The shared store goes away: checks fail closed with 503 (no traceback), then recover."""

from __future__ import annotations

import logging

import pytest
from fastapi import HTTPException
from lumid_hooks import ResourceRef

from lumid_core import unavailable
from lumid_core.logs import RateLimitedLog
from lumid_fakes import FakeLumId, PgCluster
from lumid_flowmesh_plugin import install


async def test_checks_answer_503_while_the_database_refuses_connections(
    flowmesh_env: dict[str, str],
    pg_cluster: PgCluster,
    fake_lumid: FakeLumId,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = pg_cluster.create_database()
    monkeypatch.setenv("LUMID_DATABASE_URL", pg_cluster.url(name))
    # The 503 warning is rate-limited per process: an earlier test's outage must not
    # silence this one's.
    monkeypatch.setattr(
        unavailable, "_warn", RateLimitedLog(logging.getLogger("lumid_core.store"), 60.0)
    )
    log = logging.getLogger("tests")
    token = fake_lumid.add_token("alice", scopes=["flowmesh:workflows:read"], email="a@x.io")
    async with install() as plugin:
        alice = await plugin.identity_providers[0].resolve(token, log)
        assert alice is not None
        (checker,) = plugin.permission_checkers
        await plugin.resource_registrars[0].register(
            alice, ResourceRef(kind="workflow", id="w1"), log
        )
        w1 = ResourceRef(kind="workflow", id="w1")
        await checker.require(alice, w1, "read", log)
        # A real outage: the server drops the plugin's connections and refuses new ones.
        pg_cluster.psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        pg_cluster.psql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"  # noqa: S608
        )
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                with pytest.raises(HTTPException) as failed:
                    await checker.require(alice, w1, "read", log)
                assert failed.value.status_code == 503
                assert failed.value.headers == {"Retry-After": "5"}
                with pytest.raises(HTTPException) as listed:
                    await checker.accessible_ids(alice, "workflow", "read", log)
                assert listed.value.status_code == 503
        assert any(
            "answering 503" in r.getMessage() and "LUMID_DATABASE_URL" in r.getMessage()
            for r in caplog.records
        )
        assert pg_cluster.password not in caplog.text
        pg_cluster.psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await checker.require(alice, w1, "read", log)  # the pool reconnects by itself

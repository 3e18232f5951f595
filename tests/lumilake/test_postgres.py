"""The Lumilake plugin on the shared PostgreSQL store (LUMID_DATABASE_URL)."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

import lumilake_hook
import pytest

from lumid_core.errors import StoreError
from lumid_fakes import FakeLumId, PgCluster

from .test_install import Loader, _drive_every_hook


async def test_every_hook_works_on_postgresql_and_grants_are_shared(
    lumilake_env: dict[str, str],
    pg_url: str,
    fake_lumid: FakeLumId,
    load: Loader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LUMID_DATABASE_URL", pg_url)
    monkeypatch.delenv("LUMID_ACL_DB_PATH")
    log = logging.getLogger("tests")
    async with AsyncExitStack() as stack:
        bindings = await load(stack)
        assert isinstance(bindings, lumilake_hook.BaseBindings)
        await _drive_every_hook(bindings, fake_lumid, log)
        # A second replica on the same database sees alice's job at once.
        async with AsyncExitStack() as other_stack:
            other = await load(other_stack)
            alice = await other.identity_providers[0].resolve(
                fake_lumid.add_token("alice", scopes=["lumilake:jobs:submit"]), log
            )
            assert alice is not None
            ids = await other.permission_checkers[0].accessible_ids(alice, "job", "read", log)
            assert ids == frozenset({"job-1"})


async def test_an_unreachable_server_fails_install_naming_the_variable(
    lumilake_env: dict[str, str],
    pg_cluster: PgCluster,
    load: Loader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "LUMID_DATABASE_URL", pg_cluster.url().replace(f":{pg_cluster.port}/", ":1/")
    )
    with pytest.raises(StoreError, match="LUMID_DATABASE_URL") as failed:
        async with AsyncExitStack() as stack:
            await load(stack)
    assert pg_cluster.password not in str(failed.value)

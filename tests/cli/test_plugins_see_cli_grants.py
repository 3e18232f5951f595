"""A running plugin (installed as its host installs it) honours grants the CLI just made."""

from __future__ import annotations

import logging
from collections.abc import Callable
from subprocess import CompletedProcess
from typing import TYPE_CHECKING

import pytest
from lumid_hooks import HookBindings, PrincipalContext, ResourceRef

import lumid_flowmesh_plugin
import lumid_lumilake_plugin
from lumid_fakes import FakeLumId

if TYPE_CHECKING:
    from tests.conftest import Allowed

type Cli = Callable[..., CompletedProcess[str]]

log = logging.getLogger("tests.cli")


async def _resolve(bindings: HookBindings, token: str) -> PrincipalContext:
    principal = await bindings.identity_providers[0].resolve(token, log)
    assert principal is not None
    return principal


@pytest.fixture
def no_billing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RUNMESH_BILLING_BASE_URL", "FLOWMESH_BRIDGE_SECRET", "LUMID_BALANCE_GUARD"):
        monkeypatch.delenv(name, raising=False)


async def test_flowmesh_plugin_honours_cli_grant_and_revoke(
    cli: Cli, core_env: dict[str, str], fake_lumid: FakeLumId, no_billing: None, allowed: Allowed
) -> None:
    alice_token = fake_lumid.add_token(
        "alice",
        scopes=[
            "flowmesh:write",
            "flowmesh:read",
            "flowmesh:workflows:read",
            "flowmesh:workflows:write",
            "flowmesh:tasks:read",
            "flowmesh:results:read",
        ],
    )
    bob_token = fake_lumid.add_token(
        "bob", scopes=["flowmesh:workflows:read", "flowmesh:tasks:read", "flowmesh:results:read"]
    )
    async with lumid_flowmesh_plugin.install() as bindings:
        checker = bindings.permission_checkers[0]
        registrar = bindings.resource_registrars[0]
        alice = await _resolve(bindings, alice_token)
        bob = await _resolve(bindings, bob_token)
        await registrar.register(alice, ResourceRef(kind="workflow", id="wf-1"), log)
        await registrar.register(
            alice, ResourceRef(kind="task", id="t-1", metadata={"workflow_id": "wf-1"}), log
        )
        assert not await allowed(checker, bob, "workflow", "wf-1", "read")
        assert not await allowed(checker, bob, "result", "t-1", "read")

        for kind, rid in (("workflow", "wf-1"), ("task", "t-1")):
            r = cli(
                "acl", "grant", "--kind", kind, "--id", rid, "--principal", "bob", "--level", "read"
            )
            assert r.returncode == 0, r.stderr
        assert await allowed(checker, bob, "workflow", "wf-1", "read")
        assert await allowed(checker, bob, "result", "t-1", "read")  # through the task grant
        assert not await allowed(checker, bob, "workflow", "wf-1", "cancel")
        assert await checker.accessible_ids(bob, "workflow", "read", log) == frozenset({"wf-1"})

        r = cli("acl", "revoke", "--kind", "workflow", "--id", "wf-1", "--principal", "bob")
        assert r.returncode == 0, r.stderr
        assert not await allowed(checker, bob, "workflow", "wf-1", "read")
        assert await checker.accessible_ids(bob, "workflow", "read", log) == frozenset()
        assert await allowed(checker, alice, "workflow", "wf-1", "read")  # the owner's stays


async def test_lumilake_tables_are_opened_only_by_an_operator_grant(
    cli: Cli,
    core_env: dict[str, str],
    fake_lumid: FakeLumId,
    monkeypatch: pytest.MonkeyPatch,
    allowed: Allowed,
) -> None:
    monkeypatch.delenv("LUMILAKE_REMOTE_OPTIMIZER_URL", raising=False)
    token = fake_lumid.add_token("dana", scopes=["lumilake:jobs:submit"])
    async with lumid_lumilake_plugin.install() as bindings:
        checker = bindings.permission_checkers[0]
        dana = await _resolve(bindings, token)
        assert not await allowed(checker, dana, "table", "sales", "read")
        r = cli(
            "acl",
            "grant",
            "--kind",
            "table",
            "--id",
            "sales",
            "--principal",
            "dana",
            "--level",
            "read",
        )
        assert r.returncode == 0, r.stderr
        assert await allowed(checker, dana, "table", "sales", "read")
        assert not await allowed(checker, dana, "table", "sales", "write")
        r = cli(
            "acl",
            "grant",
            "--kind",
            "table",
            "--id",
            "sales",
            "--principal",
            "dana",
            "--level",
            "write",
        )
        assert r.returncode == 0, r.stderr
        assert await allowed(checker, dana, "table", "sales", "write")
        r = cli("acl", "revoke", "--kind", "table", "--id", "sales", "--principal", "dana")
        assert r.returncode == 0, r.stderr
        assert not await allowed(checker, dana, "table", "sales", "read")

"""The registrar: grants and task -> workflow links; reconcile sweeps only kinds present."""

from __future__ import annotations

import logging

from lumid_hooks import PrincipalContext, ResourceRef

from lumid_core import Database, Level
from lumid_core.store.parents import SqliteParentLinks
from lumid_fakes import FakeLumId
from lumid_flowmesh_plugin import FlowMeshBindings, install
from lumid_flowmesh_plugin.registrar import workflow_of


async def owner(plugin: FlowMeshBindings, fake_lumid: FakeLumId) -> PrincipalContext:
    token = fake_lumid.add_token("alice", scopes=["flowmesh:workflows:read"])
    principal = await plugin.identity_providers[0].resolve(token, logging.getLogger("tests"))
    assert principal is not None
    return principal


async def test_reconcile_sweeps_only_the_kinds_present(
    flowmesh_env: dict[str, str], fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    async with install() as first:
        alice = await owner(first, fake_lumid)
        (registrar,) = first.resource_registrars
        for ref in (
            ResourceRef(kind="workflow", id="w1"),
            ResourceRef(kind="workflow", id="w-gone"),
            ResourceRef(kind="task", id="t1", metadata={"workflow_id": "w1"}),
            ResourceRef(kind="node", id="n-gone"),
        ):
            await registrar.register(alice, ref, logger)
    async with install() as second:
        alice = await owner(second, fake_lumid)
        (registrar,) = second.resource_registrars
        (checker,) = second.permission_checkers
        # A worker-role node reconciles NODEs only: workflows and tasks stay.
        await registrar.reconcile([ResourceRef(kind="node", id="n1")], logger)
        assert await checker.accessible_ids(alice, "workflow", "read", logger) == frozenset(
            {"w1", "w-gone"}
        )
        # The root node's mixed list sweeps every kind it contains.
        await registrar.reconcile(
            [
                ResourceRef(kind="workflow", id="w1"),
                ResourceRef(kind="task", id="t1"),
                ResourceRef(kind="node", id="n1"),
            ],
            logger,
        )
        assert await checker.accessible_ids(alice, "workflow", "read", logger) == frozenset({"w1"})
        assert second.billing is not None
        db = second.billing.outbox.db
        assert isinstance(db, Database)
        assert await workflow_of(SqliteParentLinks(db), "t1") == "w1"
        assert await workflow_of(SqliteParentLinks(db), "t-unknown") is None


async def test_register_grants_write_and_links_the_workflow(
    plugin: FlowMeshBindings, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    alice = await owner(plugin, fake_lumid)
    (registrar,) = plugin.resource_registrars
    assert registrar.name == "lumid_flowmesh_plugin.registrar"
    await registrar.register(
        alice, ResourceRef(kind="task", id="t9", metadata={"workflow_id": "w9"}), logger
    )
    await registrar.register(alice, ResourceRef(kind="task", id="t10", metadata={}), logger)
    assert plugin.billing is not None
    db = plugin.billing.outbox.db
    assert isinstance(db, Database)
    assert await workflow_of(SqliteParentLinks(db), "t9") == "w9"
    assert await workflow_of(SqliteParentLinks(db), "t10") is None
    row = db.read_one(
        "SELECT level FROM grants WHERE kind = 'task' AND id = 't9' AND principal_id = 'alice'"
    )
    assert row == (int(Level.WRITE),)

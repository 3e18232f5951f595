"""FlowMesh's plugin loader, reproduced from docs/host-contracts.md, loading the real module."""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
import types
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import flowmesh_hook
import lumid_hooks
import pytest
from fastapi import HTTPException
from lumid_hooks import ResourceRef

from lumid_fakes import FakeLumId, FakeRunmesh
from lumid_flowmesh_plugin import FlowMeshBindings

RowFactory = Any


@dataclass
class Loaded:
    name: str
    branch: str
    bindings: lumid_hooks.HookBindings
    supplier_resolvers: list[flowmesh_hook.SupplierResolver] = field(default_factory=list)


async def load_like_flowmesh(plugins: str, stack: AsyncExitStack) -> list[Loaded]:
    """What FlowMesh's lifespan does with FLOWMESH_PLUGINS (nothing is caught)."""
    loaded: list[Loaded] = []
    for raw in plugins.split(","):
        name = raw.strip()
        if not name:
            continue
        module = importlib.import_module(name)
        rv = module.install()
        if hasattr(rv, "__aenter__"):
            rv, branch = await stack.enter_async_context(rv), "context manager"
        elif inspect.iscoroutine(rv):
            rv, branch = await rv, "coroutine"
        else:
            branch = "value"
        if not isinstance(rv, lumid_hooks.HookBindings):
            raise TypeError(f"plugin {name} returned {type(rv).__name__}, not HookBindings")
        entry = Loaded(name, branch, rv)
        if isinstance(rv, flowmesh_hook.HookBindings):
            entry.supplier_resolvers = list(rv.supplier_resolvers)
        loaded.append(entry)
    return loaded


@pytest.fixture
def other_shapes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Three stand-in plugins, one per result shape the loader accepts."""

    @asynccontextmanager
    async def cm_install() -> AsyncIterator[lumid_hooks.BaseBindings]:
        yield lumid_hooks.BaseBindings()

    async def coro_install() -> lumid_hooks.BaseBindings:
        return lumid_hooks.BaseBindings()

    def value_install() -> flowmesh_hook.BaseBindings:
        return flowmesh_hook.BaseBindings()

    shapes: list[tuple[str, Any]] = [
        ("shape_cm", cm_install),
        ("shape_coro", coro_install),
        ("shape_value", value_install),
    ]
    names = []
    for name, fn in shapes:
        module = types.ModuleType(name)
        module.install = fn  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, name, module)
        names.append(name)
    return names


async def test_loader_shapes_and_gates(
    flowmesh_env: dict[str, str], other_shapes: list[str]
) -> None:
    async with AsyncExitStack() as stack:
        loaded = await load_like_flowmesh(
            " , ".join([*other_shapes, "lumid_flowmesh_plugin", ""]), stack
        )
        branches = {entry.name: entry.branch for entry in loaded}
        assert branches == {
            "shape_cm": "context manager",
            "shape_coro": "coroutine",
            "shape_value": "value",
            "lumid_flowmesh_plugin": "context manager",
        }
        ours = loaded[-1]
        assert isinstance(ours.bindings, lumid_hooks.HookBindings)
        assert isinstance(ours.bindings, flowmesh_hook.HookBindings)
        assert isinstance(ours.bindings, flowmesh_hook.BaseBindings)
        assert [r.name for r in ours.supplier_resolvers] == ["lumid_flowmesh_plugin.supplier"]
        names = [
            h.name
            for group in (
                ours.bindings.identity_providers,
                ours.bindings.permission_checkers,
                ours.bindings.resource_registrars,
                ours.bindings.usage_sinks,
                ours.bindings.submission_guards,
            )
            for h in group
        ]
        assert names == [
            "lumid_flowmesh_plugin.identity",
            "lumid_flowmesh_plugin.permissions",
            "lumid_flowmesh_plugin.registrar",
            "lumid_flowmesh_plugin.billing",
            "lumid_flowmesh_plugin.balance_guard",
        ]
        assert isinstance(ours.bindings, FlowMeshBindings)
        billing = ours.bindings.billing
        assert billing is not None
        assert billing.worker.running
    # The exit stack closed it: the delivery task stopped.
    assert not billing.worker.running


async def test_drive_every_hook(
    flowmesh_env: dict[str, str],
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
) -> None:
    user_scopes = [
        "flowmesh:workflows:read",
        "flowmesh:workflows:write",
        "flowmesh:tasks:read",
        "flowmesh:results:read",
    ]
    alice = fake_lumid.add_token("alice", scopes=user_scopes, email="alice@example.com")
    broke = fake_lumid.add_token("broke", scopes=user_scopes, email="broke@example.com")
    fake_runmesh.add_user("alice@example.com", "10")
    fake_runmesh.add_user("broke@example.com", "0")
    async with AsyncExitStack() as stack:
        (loaded,) = await load_like_flowmesh("lumid_flowmesh_plugin", stack)
        b = loaded.bindings
        (identity,) = b.identity_providers
        assert await identity.resolve("", logger) is None
        principal = await identity.resolve(alice, logger)
        assert principal is not None
        (guard,) = b.submission_guards
        await guard.check(principal, logger)  # balance 10: allowed
        poor = await identity.resolve(broke, logger)
        assert poor is not None
        with pytest.raises(HTTPException) as denied:
            await guard.check(poor, logger)
        assert denied.value.status_code == 402
        (checker,) = b.permission_checkers
        await checker.require(principal, ResourceRef(kind="workflow"), "write", logger)
        (registrar,) = b.resource_registrars
        await registrar.register(
            principal, ResourceRef(kind="workflow", id="w1", metadata={"format": "yaml"}), logger
        )
        await registrar.register(
            principal, ResourceRef(kind="task", id="t1", metadata={"workflow_id": "w1"}), logger
        )
        await checker.require(principal, ResourceRef(kind="result", id="t1"), "read", logger)
        assert await checker.accessible_ids(principal, "task", "read", logger) == frozenset({"t1"})
        await registrar.reconcile(
            [ResourceRef(kind="workflow", id="w1"), ResourceRef(kind="task", id="t1")], logger
        )
        worker = types.SimpleNamespace(
            id="k1", node_id="n1", namespace="acme-gpu", cluster="c", tags=[], env={}
        )
        assert loaded.supplier_resolvers[0].resolve(worker) == "acme-gpu"
        (sink,) = b.usage_sinks
        await sink.emit([usage_row("t1", cost=Decimal("0.125"))], logger)
        assert isinstance(b, FlowMeshBindings)
        assert b.billing is not None
        assert await b.billing.drain(10)
    assert fake_runmesh.entries["t1"]["workflowId"] == "w1"
    assert fake_runmesh.entries["t1"]["cost"] == "0.125"

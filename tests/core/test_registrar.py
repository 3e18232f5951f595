from __future__ import annotations

import logging

import pytest
from lumid_hooks import PrincipalContext, ResourceRef

from lumid_core import Level
from lumid_core.runtime import CoreRuntime


def who(pid: str) -> PrincipalContext:
    return PrincipalContext(
        principal_id=pid, org_id="o", external_id=pid, principal_type="user", scopes=[]
    )


async def test_registrar_lifecycle(
    runtime: CoreRuntime, logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    registrar = runtime.registrar
    assert registrar.name == "tests.registrar"
    store = runtime.store
    await registrar.register(who("alice"), ResourceRef(kind="workflow", id="w1"), logger)
    await registrar.register(
        who("alice"), ResourceRef(kind="task", id="t1", metadata={"workflow_id": "w1"}), logger
    )
    await registrar.register(who("alice"), ResourceRef(kind="workflow", id=None), logger)
    assert "without id ignored" in caplog.text
    assert await store.level("workflow", "w1", "alice") is Level.WRITE
    assert await store.level("task", "t1", "alice") is Level.WRITE
    await store.grant("workflow", "w1", "bob", Level.READ)
    await registrar.deregister(who("sys"), ResourceRef(kind="workflow", id="w1"), logger)
    assert await store.level("workflow", "w1", "alice") is None
    assert await store.level("workflow", "w1", "bob") is None
    assert await store.level("task", "t1", "alice") is Level.WRITE
    # The third call the host makes: the startup sweep keeps what is live.
    await registrar.reconcile([ResourceRef(kind="task", id="t1")], logger)
    assert await store.level("task", "t1", "alice") is Level.WRITE


async def test_reconcile_mixed_list_ignores_idless_refs(
    runtime: CoreRuntime, logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await runtime.registrar.reconcile(
        [ResourceRef(kind="node", id="n1"), ResourceRef(kind="worker", id=None)], logger
    )
    assert "reconcile swept node: 1 live, 0 stale grants removed" in caplog.text
    await runtime.registrar.reconcile([], logger)
    assert "nothing swept" in caplog.text

"""Every permission check FlowMesh's routers make (docs/host-contracts.md), for five principals.

alice owns workflow w1 / task t1; bob owns w2 / t2; carol holds the user scopes but
owns nothing; root holds `flowmesh:admin`; the system principal is the fleet's PAT
(`flowmesh:results:write flowmesh:nodes:write`) and registered node n1 and worker k1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from fastapi import HTTPException
from lumid_hooks import PermissionChecker, PrincipalContext, ResourceRef

from lumid_fakes import FakeLumId
from lumid_flowmesh_plugin import FlowMeshBindings

USER_SCOPES = [  # what lum.id expands flowmesh:read + flowmesh:write into
    "flowmesh:workflows:read",
    "flowmesh:workflows:write",
    "flowmesh:tasks:read",
    "flowmesh:results:read",
    "flowmesh:results:write",
    "flowmesh:nodes:read",
    "flowmesh:nodes:write",
    "flowmesh:workers:read",
    "flowmesh:workers:write",
    "flowmesh:system:read",
]
SYSTEM_SCOPES = ["flowmesh:results:write", "flowmesh:nodes:write"]
WHO = ("owner", "other", "scoped", "admin", "system")


@dataclass(frozen=True)
class Check:
    route: str
    kind: str
    id: str | None
    action: str
    allowed: tuple[bool, bool, bool, bool, bool]  # in WHO order


Y, N = True, False

REQUIRE = [
    Check("POST /workflows", "workflow", None, "write", (Y, Y, Y, Y, N)),
    Check("GET /workflows/{id}", "workflow", "w1", "read", (Y, N, N, Y, N)),
    Check("GET /workflows/{id}/logs", "workflow", "w1", "read", (Y, N, N, Y, N)),
    # Cancel is a workflow write: the owner (WRITE grant + workflows:write) may.
    Check("POST /workflows/{id}/cancel", "workflow", "w1", "cancel", (Y, N, N, Y, N)),
    Check("GET /tasks/{id}", "task", "t1", "read", (Y, N, N, Y, N)),
    Check("POST /tasks/{id}/stop", "task", "t1", "cancel", (Y, N, N, Y, N)),
    Check("GET /tasks/{id}/logs", "result", "t1", "read", (Y, N, N, Y, N)),
    Check("GET /results/{task_id}", "result", "t1", "read", (Y, N, N, Y, N)),
    Check("POST /results", "result", None, "write", (Y, Y, Y, Y, Y)),
    Check("POST /results/{task_id}/files", "result", None, "write", (Y, Y, Y, Y, Y)),
    Check("POST /traces/...", "result", None, "write", (Y, Y, Y, Y, Y)),
    Check("GET /nodes/{id}", "node", "n1", "read", (Y, Y, Y, Y, N)),
    Check("GET /workers/{id}", "worker", "k1", "read", (Y, Y, Y, Y, N)),
    Check("POST /nodes/register", "node", None, "write", (Y, Y, Y, Y, Y)),
    Check("POST /nodes/{id}/workers/...", "node", "n1", "write", (N, N, N, Y, Y)),
    Check("GET /system/metrics", "system", None, "admin", (N, N, N, Y, N)),
    Check("GET /ssh/connections", "system", None, "admin", (N, N, N, Y, N)),
]

ALL = None
LISTS: list[tuple[str, str, tuple[frozenset[str] | None, ...]]] = [
    (
        "workflow",
        "GET /workflows",
        (frozenset({"w1"}), frozenset({"w2"}), frozenset(), ALL, frozenset()),
    ),
    ("task", "GET /tasks", (frozenset({"t1"}), frozenset({"t2"}), frozenset(), ALL, frozenset())),
    ("worker", "GET /workers", (ALL, ALL, ALL, ALL, frozenset())),
    ("node", "GET /nodes", (ALL, ALL, ALL, ALL, frozenset())),
]


@pytest.fixture
async def world(
    plugin: FlowMeshBindings, fake_lumid: FakeLumId, logger: logging.Logger
) -> tuple[PermissionChecker, dict[str, PrincipalContext]]:
    tokens = {
        "owner": fake_lumid.add_token("alice", scopes=USER_SCOPES, email="alice@example.com"),
        "other": fake_lumid.add_token("bob", scopes=USER_SCOPES, email="bob@example.com"),
        "scoped": fake_lumid.add_token("carol", scopes=USER_SCOPES),
        "admin": fake_lumid.add_token("root", scopes=["flowmesh:admin"], role="admin"),
        "system": fake_lumid.add_token("fleet", scopes=SYSTEM_SCOPES),
    }
    (identity,) = plugin.identity_providers
    who: dict[str, PrincipalContext] = {}
    for role, token in tokens.items():
        principal = await identity.resolve(token, logger)
        assert principal is not None
        who[role] = principal
    (registrar,) = plugin.resource_registrars
    for role, wf, task in (("owner", "w1", "t1"), ("other", "w2", "t2")):
        await registrar.register(who[role], ResourceRef(kind="workflow", id=wf), logger)
        await registrar.register(
            who[role], ResourceRef(kind="task", id=task, metadata={"workflow_id": wf}), logger
        )
    await registrar.register(who["system"], ResourceRef(kind="node", id="n1"), logger)
    await registrar.register(who["system"], ResourceRef(kind="worker", id="k1"), logger)
    (checker,) = plugin.permission_checkers
    return checker, who


@pytest.mark.parametrize("check", REQUIRE, ids=lambda c: f"{c.route} {c.kind} {c.action}")
async def test_require(
    world: tuple[PermissionChecker, dict[str, PrincipalContext]],
    check: Check,
    logger: logging.Logger,
) -> None:
    checker, who = world
    for role, expected in zip(WHO, check.allowed, strict=True):
        ref = ResourceRef(kind=check.kind, id=check.id)
        if expected:
            await checker.require(who[role], ref, check.action, logger)
        else:
            with pytest.raises(HTTPException) as denied:
                await checker.require(who[role], ref, check.action, logger)
            assert denied.value.status_code == 403, role


@pytest.mark.parametrize(("kind", "route", "expected"), LISTS, ids=[r for _, r, _ in LISTS])
async def test_accessible_ids(
    world: tuple[PermissionChecker, dict[str, PrincipalContext]],
    kind: str,
    route: str,
    expected: tuple[frozenset[str] | None, ...],
    logger: logging.Logger,
) -> None:
    checker, who = world
    got = tuple([await checker.accessible_ids(who[r], kind, "read", logger) for r in WHO])
    assert got == expected


async def test_result_checks_resolve_against_the_task_grant(
    world: tuple[PermissionChecker, dict[str, PrincipalContext]], logger: logging.Logger
) -> None:
    checker, who = world
    # alice owns task t1, so the result of t1 is hers; a result id never registered
    # as a task is nobody's (RESULT is never registered).
    await checker.require(who["owner"], ResourceRef(kind="result", id="t1"), "write", logger)
    with pytest.raises(HTTPException):
        await checker.require(who["owner"], ResourceRef(kind="result", id="t2"), "read", logger)
    with pytest.raises(HTTPException):
        await checker.require(who["owner"], ResourceRef(kind="pipeline"), "read", logger)
    with pytest.raises(HTTPException):
        await checker.require(who["owner"], ResourceRef(kind="workflow"), "delete", logger)

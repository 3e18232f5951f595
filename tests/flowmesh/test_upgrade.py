"""Upgrading a FlowMesh server from lumid-plugins 0.2.x in place: grants and clients survive.

The 0.2.x database is built by the test (lumid_fakes.legacy_db) at the same
LUMID_ACL_DB_PATH; `install()` is entered as FlowMesh enters it (an async context
manager on the lifespan's exit stack).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from lumid_hooks import PrincipalContext, ResourceRef

from lumid_core import DatabaseError
from lumid_fakes import FakeLumId
from lumid_fakes.legacy_db import LegacyRow, iso, write_legacy_db
from lumid_flowmesh_plugin import FlowMeshBindings, install

if TYPE_CHECKING:
    from tests.conftest import Allowed

T0 = time.time() - 30 * 86_400
# alice submitted w1 (tasks t1, t2); bob submitted w2 (t3); bob was given READ on w1.
LEGACY: list[LegacyRow] = [
    ("workflow", "w1", "alice", 2, iso(T0), iso(T0 + 5)),
    ("task", "t1", "alice", 2, iso(T0), iso(T0 + 5)),
    ("task", "t2", "alice", 2, iso(T0), iso(T0 + 5)),
    ("workflow", "w2", "bob", 2, iso(T0 + 1), iso(T0 + 6)),
    ("task", "t3", "bob", 2, iso(T0 + 1), iso(T0 + 6)),
    ("workflow", "w1", "bob", 1, iso(T0 + 2), iso(T0 + 7)),
]
FULL = [  # what lum.id expands flowmesh:read + flowmesh:write into
    "flowmesh:workflows:read",
    "flowmesh:workflows:write",
    "flowmesh:tasks:read",
    "flowmesh:results:read",
    "flowmesh:results:write",
]


async def enter_like_flowmesh(stack: AsyncExitStack) -> FlowMeshBindings:
    bindings = await stack.enter_async_context(install())
    assert isinstance(bindings, FlowMeshBindings)
    return bindings


async def resolve(
    bindings: FlowMeshBindings, fake: FakeLumId, sub: str, scopes: list[str]
) -> PrincipalContext:
    token = fake.add_token(sub, scopes=scopes, email=f"{sub}@example.com")
    (identity,) = bindings.identity_providers
    principal = await identity.resolve(token, logging.getLogger("tests"))
    assert principal is not None
    return principal


def grants_dump(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT * FROM grants ORDER BY kind, id, principal_id").fetchall()
    finally:
        conn.close()


@pytest.fixture
async def upgraded(
    request: pytest.FixtureRequest,
    flowmesh_env: dict[str, str],
    db_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[FlowMeshBindings]:
    write_legacy_db(db_path, LEGACY, layout=getattr(request, "param", "0.2.1"))
    with caplog.at_level(logging.INFO, "lumid_flowmesh_plugin"):
        async with AsyncExitStack() as stack:
            yield await enter_like_flowmesh(stack)


@pytest.mark.parametrize("upgraded", ["0.2.0", "0.2.1"], indirect=True)
async def test_every_migrated_grant_authorizes_its_owner_and_nobody_else(
    upgraded: FlowMeshBindings,
    fake_lumid: FakeLumId,
    caplog: pytest.LogCaptureFixture,
    allowed: Allowed,
) -> None:
    (line,) = [r for r in caplog.get_records("setup") if "from the lumid-plugins" in r.getMessage()]
    assert line.levelno == logging.INFO
    assert "migrated 6 grants" in line.getMessage()
    assert "acl_grants_migrated_0_2" in line.getMessage()
    (checker,) = upgraded.permission_checkers
    alice = await resolve(upgraded, fake_lumid, "alice", FULL)
    bob = await resolve(upgraded, fake_lumid, "bob", FULL)
    carol = await resolve(upgraded, fake_lumid, "carol", FULL)  # owns nothing
    for who, wf, tasks in ((alice, "w1", ("t1", "t2")), (bob, "w2", ("t3",))):
        assert await allowed(checker, who, "workflow", wf, "read")
        assert await allowed(checker, who, "workflow", wf, "write")
        assert await allowed(checker, who, "workflow", wf, "cancel")
        for t in tasks:
            assert await allowed(checker, who, "task", t, "read")
            assert await allowed(checker, who, "task", t, "cancel")
            assert await allowed(checker, who, "result", t, "read")  # through the task grant
            assert not await allowed(checker, carol, "result", t, "read")
        assert not await allowed(checker, carol, "workflow", wf, "read")
    # bob's 0.2.x READ on w1: read, never cancel; and nothing on alice's tasks.
    assert await allowed(checker, bob, "workflow", "w1", "read")
    assert not await allowed(checker, bob, "workflow", "w1", "cancel")
    assert not await allowed(checker, bob, "workflow", "w1", "write")
    assert not await allowed(checker, bob, "task", "t1", "read")
    assert not await allowed(checker, alice, "workflow", "w2", "read")
    log = logging.getLogger("t")
    assert await checker.accessible_ids(alice, "workflow", "read", log) == frozenset({"w1"})
    assert await checker.accessible_ids(bob, "workflow", "read", log) == frozenset({"w1", "w2"})
    assert await checker.accessible_ids(bob, "workflow", "cancel", log) == frozenset({"w2"})
    assert await checker.accessible_ids(alice, "task", "read", log) == frozenset({"t1", "t2"})
    assert await checker.accessible_ids(carol, "task", "read", log) == frozenset()


async def test_reconcile_sweeps_migrated_grants_like_new_ones(
    upgraded: FlowMeshBindings, fake_lumid: FakeLumId, allowed: Allowed
) -> None:
    (registrar,) = upgraded.resource_registrars
    (checker,) = upgraded.permission_checkers
    alice = await resolve(upgraded, fake_lumid, "alice", FULL)
    # A workflow submitted after the upgrade, and FlowMesh's startup list without w2/t3/t2.
    await registrar.register(alice, ResourceRef(kind="workflow", id="w9"), logging.getLogger())
    live = [ResourceRef(kind="workflow", id="w1"), ResourceRef(kind="task", id="t1")]
    await registrar.reconcile(live, logging.getLogger("t"))
    bob = await resolve(upgraded, fake_lumid, "bob", FULL)
    assert not await allowed(checker, bob, "workflow", "w2", "read")  # migrated, stale: gone
    assert not await allowed(checker, alice, "task", "t2", "read")
    assert await allowed(checker, alice, "workflow", "w1", "cancel")  # live: kept
    assert await allowed(checker, bob, "workflow", "w1", "read")
    assert await allowed(checker, alice, "task", "t1", "read")
    assert await allowed(checker, alice, "workflow", "w9", "read")  # new since the start


async def test_a_second_start_changes_nothing(
    flowmesh_env: dict[str, str], db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_legacy_db(db_path, LEGACY)
    async with AsyncExitStack() as stack:
        await enter_like_flowmesh(stack)
    grants, first = grants_dump(db_path), db_path.read_bytes()
    caplog.clear()
    with caplog.at_level(logging.INFO, "lumid_flowmesh_plugin"):
        async with AsyncExitStack() as stack:
            await enter_like_flowmesh(stack)
    assert not [r for r in caplog.records if "from the lumid-plugins" in r.getMessage()]
    assert grants_dump(db_path) == grants
    assert db_path.read_bytes() == first


async def test_a_failure_mid_copy_fails_install_naming_the_variable(
    flowmesh_env: dict[str, str], db_path: Path
) -> None:
    async with AsyncExitStack() as stack:  # a current database, then 0.2.x wrote into it
        await enter_like_flowmesh(stack)
    write_legacy_db(db_path, LEGACY)
    conn = sqlite3.connect(db_path)
    conn.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON grants WHEN NEW.id = 't3' "
        "BEGIN SELECT RAISE(FAIL, 'injected'); END"
    )
    conn.commit()
    conn.close()
    original = db_path.read_bytes()
    with pytest.raises(DatabaseError, match=r"^LUMID_ACL_DB_PATH=.*injected"):
        async with AsyncExitStack() as stack:
            await enter_like_flowmesh(stack)
    assert db_path.read_bytes() == original
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT count(*) FROM acl_grants").fetchone() == (len(LEGACY),)
        assert conn.execute("SELECT count(*) FROM grants").fetchone() == (0,)
    finally:
        conn.close()


# -- the authorization change: the creating scope reads what one owns, by id only --

ROUTES = [
    # (route, kind, id, action): alice owns w1 / t1, bob owns w2 / t3
    ("GET /workflows/{id}", "workflow", "w1", "read"),
    ("POST /workflows/{id}/cancel", "workflow", "w1", "cancel"),
    ("GET /tasks/{id}", "task", "t1", "read"),
    ("POST /tasks/{id}/stop", "task", "t1", "cancel"),
    ("GET /results/{task_id}", "result", "t1", "read"),
    ("GET /workflows/{id} (another's)", "workflow", "w2", "read"),
    ("GET /tasks/{id} (another's)", "task", "t3", "read"),
    ("GET /results/{task_id} (another's)", "result", "t3", "read"),
    ("GET /workflows (kind level)", "workflow", None, "read"),
    ("GET /tasks (kind level)", "task", None, "read"),
    ("POST /workflows", "workflow", None, "write"),
]
Y, N = True, False
MATRIX: dict[str, tuple[list[str], tuple[bool, ...]]] = {
    # a `flowmesh:write` PAT: lum.id expands it to the :write scopes only
    "write-only": (
        ["flowmesh:workflows:write", "flowmesh:results:write"],
        (Y, Y, Y, Y, Y, N, N, N, N, N, Y),
    ),
    "read-only": (
        ["flowmesh:workflows:read", "flowmesh:tasks:read", "flowmesh:results:read"],
        (Y, N, Y, N, Y, N, N, N, Y, Y, N),
    ),
}


@pytest.mark.parametrize("pat", list(MATRIX))
async def test_authorization_matrix(
    upgraded: FlowMeshBindings, fake_lumid: FakeLumId, pat: str, allowed: Allowed
) -> None:
    scopes, expected = MATRIX[pat]
    (checker,) = upgraded.permission_checkers
    alice = await resolve(upgraded, fake_lumid, "alice", scopes)
    got = tuple([await allowed(checker, alice, k, i, a) for _, k, i, a in ROUTES])
    assert dict(zip([r[0] for r in ROUTES], got, strict=True)) == dict(
        zip([r[0] for r in ROUTES], expected, strict=True)
    )
    # Listings: the write-only PAT sees nothing (as in 0.2.x); the read scope lists.
    log = logging.getLogger("t")
    listed = await checker.accessible_ids(alice, "workflow", "read", log)
    assert listed == (frozenset() if pat == "write-only" else {"w1"})
    tasks = await checker.accessible_ids(alice, "task", "read", log)
    assert tasks == (frozenset() if pat == "write-only" else {"t1", "t2"})

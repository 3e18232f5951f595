"""The authorization matrix of Lumilake's routes (docs/host-contracts.md), on real SQLite.

Principals: the owner (alice), another user (bob) with the same scopes, a user
holding only the earlier plugin's read scopes (carol), a submit-only user (sam),
admins, a FlowMesh admin and a user without Lumilake scopes.
"""

from __future__ import annotations

import logging

import lumilake_hook
import pytest
from fastapi import HTTPException
from lumid_hooks import PermissionChecker, PrincipalContext, ResourceRef

from lumid_core import Level
from lumid_lumilake_plugin import LumilakePermissions
from lumid_lumilake_plugin.permissions import artifact_job_id, prefix_ancestors
from lumid_lumilake_plugin.policy import ADMIN_SCOPES, KIND_SCOPES


def _p(pid: str, *scopes: str) -> PrincipalContext:
    return PrincipalContext(
        principal_id=pid, org_id="lumid", external_id=pid, principal_type="user", scopes=[*scopes]
    )


USER = ("lumilake:jobs:submit", "lumilake:jobs:cancel", "lumilake:trace:read")
PRINCIPALS = {
    "owner": _p("alice", *USER),
    "other": _p("bob", *USER),
    "legacy-reader": _p("carol", "lumilake:jobs:read", "lumilake:workers:read"),
    "legacy-writer": _p("dave", "lumilake:jobs:write"),
    "submit-only": _p("alice", "lumilake:jobs:submit"),
    "admin": _p("root", "lumilake:admin"),
    "star": _p("root2", "*"),
    "lumilake-star": _p("root3", "lumilake:*"),
    "flowmesh-admin": _p("fm", "flowmesh:admin", "flowmesh:*"),
    "no-scopes": _p("alice"),
}

ADMINS = {"admin", "star", "lumilake-star"}
ALLOW = True
DENY = False

# (who, kind, id, action) -> allowed; ids refer to the fixtures registered below.
MATRIX: list[tuple[str, str, str | None, str, bool]] = [
    # POST /jobs, /preview, /optimizer/schedule: require(job, None, write)
    ("owner", "job", None, "write", ALLOW),
    ("other", "job", None, "write", ALLOW),
    ("legacy-writer", "job", None, "write", ALLOW),
    ("legacy-reader", "job", None, "write", DENY),
    ("flowmesh-admin", "job", None, "write", DENY),
    ("no-scopes", "job", None, "write", DENY),
    # GET /jobs: require(job, None, read)
    ("owner", "job", None, "read", ALLOW),
    ("submit-only", "job", None, "read", ALLOW),
    ("legacy-reader", "job", None, "read", ALLOW),
    ("flowmesh-admin", "job", None, "read", DENY),
    ("no-scopes", "job", None, "read", DENY),
    # GET /jobs/{id}
    ("owner", "job", "job-1", "read", ALLOW),
    ("submit-only", "job", "job-1", "read", ALLOW),
    ("other", "job", "job-1", "read", DENY),
    ("legacy-reader", "job", "job-1", "read", DENY),
    ("no-scopes", "job", "job-1", "read", DENY),
    ("owner", "job", "job-unknown", "read", DENY),
    # POST /jobs/{id}/cancel
    ("owner", "job", "job-1", "cancel", ALLOW),
    ("submit-only", "job", "job-1", "cancel", DENY),
    ("other", "job", "job-1", "cancel", DENY),
    ("legacy-writer", "job", "job-1", "cancel", DENY),
    # artifacts "{job_id}/{filename}"
    ("owner", "artifact", "job-1/out.parquet", "read", ALLOW),
    ("owner", "artifact", "job-1/unregistered.csv", "read", ALLOW),  # through the job grant
    ("other", "artifact", "job-1/out.parquet", "read", DENY),
    ("other", "artifact", "job-1/unregistered.csv", "read", DENY),
    ("owner", "artifact", "job-2/out.parquet", "read", DENY),
    ("owner", "artifact", "job-1/a/b.csv", "read", DENY),  # not a route-shaped id
    ("owner", "artifact", "job-1/", "read", DENY),
    ("owner", "artifact", "job-1/..", "read", DENY),  # the job's folder's parent
    ("owner", "artifact", "job-1/.", "read", DENY),
    ("no-scopes", "artifact", "job-1/out.parquet", "read", DENY),
    ("owner", "artifact", "job-1/out.parquet", "write", DENY),
    # traces
    ("owner", "trace", None, "read", ALLOW),
    ("owner", "trace", "trace-1", "read", ALLOW),
    ("other", "trace", "trace-1", "read", DENY),
    ("submit-only", "trace", None, "read", DENY),
    ("submit-only", "trace", "trace-1", "read", DENY),
    ("legacy-reader", "trace", None, "read", ALLOW),
    ("legacy-reader", "trace", "trace-1", "read", DENY),
    # workers: a fleet, never registered
    ("legacy-reader", "worker", None, "read", ALLOW),
    ("legacy-reader", "worker", "worker-7", "read", ALLOW),
    ("owner", "worker", None, "read", DENY),
    ("owner", "worker", "worker-7", "read", DENY),
    ("legacy-reader", "worker", "worker-7", "write", DENY),
    # tables: a scope AND an operator's grant (alice: READ on "sales")
    ("owner", "table", "sales", "read", ALLOW),
    ("owner", "table", "sales", "write", DENY),
    ("owner", "table", "payroll", "read", DENY),
    ("other", "table", "sales", "read", DENY),
    ("no-scopes", "table", "sales", "read", DENY),
    ("legacy-reader", "table", "sales", "read", DENY),
    # object prefixes (alice: WRITE on "s3://lake/alice/")
    ("owner", "object-prefix", "s3://lake/alice/", "write", ALLOW),
    ("owner", "object-prefix", "s3://lake/alice/job-7/out/", "write", ALLOW),
    ("owner", "object-prefix", "s3://lake/alice/job-7/out/", "read", ALLOW),
    ("owner", "object-prefix", "s3://lake/alice-evil/", "read", DENY),
    ("owner", "object-prefix", "s3://lake/alice/../bob/", "read", DENY),
    ("owner", "object-prefix", "s3://lake/alice//x/", "read", DENY),
    ("owner", "object-prefix", "s3://lake/alice/%2e%2e/bob/", "read", DENY),
    ("owner", "object-prefix", "s3://lake/alice/%2E/x/", "read", DENY),
    ("owner", "object-prefix", "s3://lake/alice/x%2F..%2F..%2Fbob/", "read", DENY),
    ("owner", "object-prefix", "s3://lake/alice/x%5C..%5C..%5Cbob/", "read", DENY),
    ("owner", "object-prefix", "s3://lake/", "read", DENY),
    ("other", "object-prefix", "s3://lake/alice/job-7/", "read", DENY),
    ("no-scopes", "object-prefix", "s3://lake/alice/job-7/", "read", DENY),
    # system and unknown kinds
    ("owner", "system", None, "admin", DENY),
    ("owner", "no-such-kind", None, "read", DENY),
    ("owner", "job", None, "delete", DENY),
]


@pytest.fixture
async def checker(
    bindings: lumilake_hook.BaseBindings, logger: logging.Logger
) -> PermissionChecker:
    """The plugin's own checker, with alice's job, trace, artifact and two operator grants."""
    (checker,) = bindings.permission_checkers
    (registrar,) = bindings.resource_registrars
    alice = PRINCIPALS["owner"]
    bob = PRINCIPALS["other"]
    for ref in (
        ResourceRef(kind="job", id="job-1", metadata={"workflow_count": 1, "status": "queued"}),
        ResourceRef(kind="trace", id="trace-1", metadata={"job_id": "job-1"}),
        ResourceRef(kind="artifact", id="job-1/out.parquet", metadata={"job_id": "job-1"}),
    ):
        await registrar.register(alice, ref, logger)
    await registrar.register(bob, ResourceRef(kind="job", id="job-2"), logger)
    assert isinstance(checker, LumilakePermissions)
    store = checker._store  # the plugin's grant store: what `lumid grant` writes to
    await store.grant("table", "sales", "alice", Level.READ)
    await store.grant("object-prefix", "s3://lake/alice/", "alice", Level.WRITE)
    return checker


@pytest.mark.parametrize("who", sorted({row[0] for row in MATRIX}))
async def test_matrix(checker: PermissionChecker, logger: logging.Logger, who: str) -> None:
    principal = PRINCIPALS[who]
    wrong: list[str] = []
    for row_who, kind, rid, action, allowed in MATRIX:
        if row_who != who:
            continue
        try:
            await checker.require(principal, ResourceRef(kind=kind, id=rid), action, logger)
        except HTTPException as exc:
            got = DENY if exc.status_code == 403 else None
        else:
            got = ALLOW
        if got is not allowed:
            wrong.append(f"{action} {kind} {rid!r}: got {got}, expected {allowed}")
    assert wrong == []


@pytest.mark.parametrize("who", sorted(ADMINS))
async def test_admins_pass_every_known_check(
    checker: PermissionChecker, logger: logging.Logger, who: str
) -> None:
    known = [(k, i, a) for _, k, i, a, _ in MATRIX if k != "no-such-kind" and a != "delete"]
    for kind, rid, action in known:
        await checker.require(PRINCIPALS[who], ResourceRef(kind=kind, id=rid), action, logger)


@pytest.mark.parametrize(
    ("who", "kind", "expected"),
    [
        ("owner", "job", frozenset({"job-1"})),
        ("other", "job", frozenset({"job-2"})),
        ("legacy-reader", "job", frozenset()),
        ("no-scopes", "job", frozenset()),
        ("owner", "trace", frozenset({"trace-1"})),
        ("other", "trace", frozenset()),
        ("submit-only", "trace", frozenset()),
        ("legacy-reader", "worker", None),
        ("owner", "worker", frozenset()),
        ("admin", "job", None),
        ("star", "trace", None),
        ("flowmesh-admin", "job", frozenset()),
    ],
)
async def test_listings(
    checker: PermissionChecker,
    logger: logging.Logger,
    who: str,
    kind: str,
    expected: frozenset[str] | None,
) -> None:
    assert await checker.accessible_ids(PRINCIPALS[who], kind, "read", logger) == expected


async def test_grant_levels_matter(checker: PermissionChecker, logger: logging.Logger) -> None:
    """A READ grant an operator gives bob on alice's job lets him read, not cancel."""
    assert isinstance(checker, LumilakePermissions)
    await checker._store.grant("job", "job-1", "bob", Level.READ)
    bob = PRINCIPALS["other"]
    await checker.require(bob, ResourceRef(kind="job", id="job-1"), "read", logger)
    await checker.require(bob, ResourceRef(kind="artifact", id="job-1/new.csv"), "read", logger)
    with pytest.raises(HTTPException):
        await checker.require(bob, ResourceRef(kind="job", id="job-1"), "cancel", logger)


def test_scope_table_never_names_another_service() -> None:
    for scopes in KIND_SCOPES.values():
        assert all(s.startswith("lumilake:") for s in scopes)
    assert set(ADMIN_SCOPES) == {"*", "lumilake:*", "lumilake:admin"}


@pytest.mark.parametrize(
    ("artifact", "job"),
    [
        ("job-1/out.csv", "job-1"),
        ("job-1/", None),
        ("/out.csv", None),
        ("job-1", None),
        ("job-1/a/b", None),
        ("job-1/..", None),
        ("job-1/.", None),
        ("job-1/%2e%2e", None),
        ("job-1/..%2Fjob-2%2Fout.csv", None),
        ("job-1/..%5Cjob-2%5Cout.csv", None),
        ("job-1/..\\job-2\\out.csv", None),
    ],
)
def test_artifact_job_id(artifact: str, job: str | None) -> None:
    assert artifact_job_id(artifact) == job


@pytest.mark.parametrize(
    ("prefix", "ancestors"),
    [
        (
            "s3://lake/a/b/",
            ["s3://lake/a/b", "s3://lake/a/", "s3://lake/a", "s3://lake/", "s3://lake"],
        ),
        ("s3://lake/a/b", ["s3://lake/a/", "s3://lake/a", "s3://lake/", "s3://lake"]),
        ("/data/team/x", ["/data/team/", "/data/team", "/data/", "/data", "/"]),
        ("s3://lake/a/../b/", []),
        ("s3://lake/./b/", []),
        ("s3://lake//b/", []),
        ("s3:///b/", []),
        ("s3://lake", []),
    ],
)
def test_prefix_ancestors(prefix: str, ancestors: list[str]) -> None:
    assert prefix_ancestors(prefix) == ancestors

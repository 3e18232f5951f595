"""One realistic session through every hook of an installed plugin.

    python -m lumid_demo.walk flowmesh|lumilake

Runs inside the demo venv, where the plugin came from the local index: it starts
the lum.id, Runmesh and optimizer emulators on 127.0.0.1, sets the environment an
operator would, loads the plugin exactly as its host does (`hosts`), and plays
the host's calls in the order a real session makes them. Every step states what
it expects; the exit code is 0 only when every expectation held.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final

from fastapi import HTTPException
from lumid_hooks import PrincipalContext, ResourceRef

from lumid_fakes import FakeLumId, FakeOptimizer, FakeRunmesh

from .hosts import describe, load_flowmesh, load_lumilake

__all__ = ["Walk", "main"]

log = logging.getLogger("host")

ORG: Final = "lumid"


class Walk:
    """Prints each step and counts the ones whose expectation did not hold."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.steps = 0

    def section(self, title: str) -> None:
        print(f"\n-- {title}", flush=True)

    def note(self, text: str) -> None:
        print(f"        {text}", flush=True)

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        self.steps += 1
        mark = " ok " if ok else "FAIL"
        print(f"  [{mark}] {what}" + (f": {detail}" if detail else ""), flush=True)
        if not ok:
            self.failures.append(what)
        return ok

    async def allowed(
        self, who: str, call: str, check: Awaitable[object], expect: str | None = None
    ) -> None:
        """The call must not raise (and, given `expect`, must return it)."""
        try:
            result = await check
        except HTTPException as exc:
            self.check(f"{who:<6} {call}", False, f"denied {exc.status_code}: {exc.detail}")
            return
        extra = f" -> {result}" if isinstance(result, str) else ""
        ok = expect is None or result == expect
        self.check(
            f"{who:<6} {call}", ok, f"allowed{extra}" + ("" if ok else f", expected {expect}")
        )

    async def denied(self, who: str, call: str, check: Awaitable[object], status: int) -> None:
        try:
            result = await check
        except HTTPException as exc:
            self.check(
                f"{who:<6} {call}",
                exc.status_code == status,
                f"denied {exc.status_code}: {exc.detail}",
            )
            return
        self.check(f"{who:<6} {call}", False, f"ALLOWED ({_show(result)}), expected {status}")


def _show(value: object) -> str:
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(value)) + "}"
    if value is None:
        return "None (no filter: sees every one)"
    return repr(value)


@dataclass(frozen=True)
class Person:
    label: str
    sub: str
    email: str
    role: str
    scopes: tuple[str, ...]
    token: str = ""


def _people(lumid: FakeLumId, scopes: dict[str, tuple[str, ...]]) -> dict[str, Person]:
    base = {
        "admin": ("ada", "ada@lumid.example", "admin"),
        "alice": ("alice", "alice@lumid.example", "user"),
        "bob": ("bob", "bob@lumid.example", "user"),
        "fleet": ("svc-fleet", "fleet@lumid.example", "user"),
    }
    people = {}
    for label, (sub, email, role) in base.items():
        token = lumid.add_token(sub, scopes=list(scopes[label]), email=email, role=role)
        people[label] = Person(label, sub, email, role, scopes[label], token)
    return people


async def _chain(
    bindings: Any, authorization: str | None, *, any_case: bool = False
) -> PrincipalContext | None:
    """The hosts' identity chain, providers in order. FlowMesh's token is the header
    minus the exact prefix "Bearer "; Lumilake matches the scheme in any case."""
    token = ""
    if authorization is not None:
        scheme, _, rest = authorization.partition(" ")
        if scheme == "Bearer" or (any_case and scheme.lower() == "bearer"):
            token = rest
    for provider in bindings.identity_providers:
        principal: PrincipalContext | None = await provider.resolve(token, log)
        if principal is not None:
            return principal
    return None


async def _require(
    bindings: Any, who: PrincipalContext, kind: str, id: str | None, action: str
) -> None:
    for checker in bindings.permission_checkers:
        await checker.require(who, ResourceRef(kind=kind, id=id), action, log)


async def _accessible(bindings: Any, who: PrincipalContext, kind: str, action: str) -> str:
    """The hosts' listing filter: results intersected, None = no filter."""
    result: frozenset[str] | None = None
    for checker in bindings.permission_checkers:
        ids = await checker.accessible_ids(who, kind, action, log)
        if ids is not None:
            result = ids if result is None else result & ids
    return _show(result)


async def _register(bindings: Any, who: PrincipalContext, ref: ResourceRef) -> None:
    for registrar in bindings.resource_registrars:
        await registrar.register(who, ref, log)


async def _reconcile(bindings: Any, refs: Sequence[ResourceRef]) -> None:
    for registrar in bindings.resource_registrars:
        await registrar.reconcile(refs, log)


async def _guards(bindings: Any, who: PrincipalContext) -> str:
    for guard in bindings.submission_guards:
        await guard.check(who, log)
    return f"{len(bindings.submission_guards)} guard(s) passed"


def _grants(db: Path) -> list[tuple[str, str, str, int]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT kind, id, principal_id, level FROM grants ORDER BY kind, id, principal_id"
        ).fetchall()
    finally:
        conn.close()
    return [(str(k), str(i), str(p), int(lv)) for k, i, p, lv in rows]


def _print_grants(walk: Walk, db: Path) -> list[tuple[str, str, str, int]]:
    grants = _grants(db)
    walk.section(f"grants in {db.name}")
    for kind, id_, principal, level in grants:
        walk.note(f"{kind:<9} {id_:<24} {principal:<10} {'WRITE' if level == 2 else 'READ'}")
    return grants


async def _wait_for(cond: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


# -- FlowMesh ------------------------------------------------------------------------------


FLOWMESH_SCOPES: Final = {
    "admin": ("flowmesh:admin",),
    "alice": (
        "flowmesh:workflows:read", "flowmesh:workflows:write", "flowmesh:tasks:read",
        "flowmesh:results:read", "flowmesh:nodes:read", "flowmesh:workers:read",
    ),
    "bob": (
        "flowmesh:workflows:read", "flowmesh:workflows:write", "flowmesh:tasks:read",
        "flowmesh:results:read", "flowmesh:nodes:read", "flowmesh:workers:read",
    ),
    "fleet": (
        "flowmesh:results:write", "flowmesh:nodes:read", "flowmesh:nodes:write",
        "flowmesh:workers:read", "flowmesh:workers:write",
    ),
}  # fmt: skip


@dataclass
class _Worker:
    """What FlowMesh hands a SupplierResolver (flowmesh_hook.WorkerView)."""

    id: str
    node_id: str
    namespace: str
    cluster: str
    tags: list[str]
    env: dict[str, Any]


async def walk_flowmesh(walk: Walk, data: Path) -> None:
    with FakeLumId() as lumid, FakeRunmesh() as runmesh:
        people = _people(lumid, FLOWMESH_SCOPES)
        runmesh.add_user(people["alice"].email, "100")
        runmesh.add_user(people["bob"].email, "0")
        runmesh.add_user(people["admin"].email, "100")
        db = data / "flowmesh" / "lumid_acl.sqlite"
        os.environ.update(
            {
                "FLOWMESH_PLUGINS": "lumid_flowmesh_plugin",
                "FLOWMESH_API_KEY": people["fleet"].token,
                "LUM_ID_BASE_URL": lumid.url,
                "LUMID_ACL_DB_PATH": str(db),
                "RUNMESH_BILLING_BASE_URL": runmesh.url,
                "FLOWMESH_BRIDGE_SECRET": runmesh.secret,
                "LUMID_BALANCE_GUARD": "on",
                "LUMID_BILLING_FLUSH_SECONDS": "0.1",
            }
        )
        walk.section(
            f"FlowMesh host, lumid-flowmesh-plugin {version('lumid-flowmesh-plugin')} "
            f"on lumid-core {version('lumid-core')}"
        )
        walk.note(f"lum.id at {lumid.url}, Runmesh at {runmesh.url}, grants in {db}")
        async with AsyncExitStack() as lifespan:
            loaded = await load_flowmesh(os.environ["FLOWMESH_PLUGINS"], lifespan)
            walk.check(
                "load: import_module + install() entered on the lifespan's AsyncExitStack",
                len(loaded) == 1,
                "passes lumid_hooks.HookBindings and flowmesh_hook.HookBindings"
                if loaded and loaded[0].extra
                else "supplier_resolvers NOT taken",
            )
            for line in describe("flowmesh", loaded[0]):
                walk.note(line)
            fm = loaded[0].bindings
            suppliers = loaded[0].extra
            await _flowmesh_session(walk, fm, suppliers, lumid, runmesh, people)
        walk.check("shutdown: the lifespan exited the plugin's context manager", True)
        grants = _print_grants(walk, db)
        walk.check(
            "alice owns wf-1 and its tasks; the fleet credential owns node-1 and worker-1",
            {("workflow", "wf-1", "alice"), ("task", "t-1", "alice"), ("task", "t-2", "alice"),
             ("node", "node-1", "svc-fleet"), ("worker", "worker-1", "svc-fleet")}
            <= {(k, i, p) for k, i, p, _lv in grants},
        )  # fmt: skip


async def _flowmesh_session(
    walk: Walk,
    fm: Any,
    suppliers: Sequence[Any],
    lumid: FakeLumId,
    runmesh: FakeRunmesh,
    people: dict[str, Person],
) -> None:
    walk.section("startup: system principal, fleet registration, one reconcile sweep")
    system = await _chain(fm, f"Bearer {os.environ['FLOWMESH_API_KEY']}")
    walk.check(
        "FLOWMESH_API_KEY resolves to the fleet's service account",
        system is not None and system.principal_id == "svc-fleet",
        f"{system.principal_id} scopes={system.scopes}" if system else "did not resolve",
    )
    assert system is not None
    await _register(fm, system, ResourceRef(kind="node", id="node-1", metadata={"role": "root"}))
    await _register(fm, system, ResourceRef(kind="worker", id="worker-1", metadata={"gpu": "a100"}))
    walk.check("registrar: NODE node-1 and WORKER worker-1 registered by the fleet", True)
    await _reconcile(
        fm, [ResourceRef(kind="node", id="node-1"), ResourceRef(kind="worker", id="worker-1")]
    )
    walk.check("reconcile: startup sweep with the live NODE and WORKER refs", True)

    walk.section("identity: Authorization header -> principal")
    who: dict[str, PrincipalContext] = {}
    for label in ("admin", "alice", "bob"):
        p = people[label]
        principal = await _chain(fm, f"Bearer {p.token}")
        walk.check(
            f"{label:<6} resolved",
            principal is not None and principal.principal_id == p.sub,
            f"{principal.principal_id} ({principal.principal_type}, {principal.external_id}), "
            f"{len(principal.scopes)} scopes"
            if principal
            else "None",
        )
        assert principal is not None
        who[label] = principal
    before = lumid.introspections()
    walk.check(
        "no header -> no principal (host answers 401), no lum.id call",
        await _chain(fm, None) is None and lumid.introspections() == before,
    )
    revoked = lumid.add_token("mallory", scopes=["flowmesh:admin"], email="m@lumid.example")
    lumid.revoke(revoked)
    walk.check(
        "revoked token -> no principal (host answers 401)",
        await _chain(fm, f"Bearer {revoked}") is None,
    )
    cached = lumid.introspections()
    await _chain(fm, f"Bearer {people['alice'].token}")
    walk.check("alice again -> served from the 60 s cache", lumid.introspections() == cached)

    alice, bob, admin = who["alice"], who["bob"], who["admin"]
    walk.section("POST /workflows: kind check, balance guard, registrar")
    await walk.allowed(
        "alice", "require(workflow, -, write)", _require(fm, alice, "workflow", None, "write")
    )
    await walk.allowed(
        "alice", "submission guards (Runmesh balance 100)", _guards(fm, alice), "1 guard(s) passed"
    )
    await _register(
        fm,
        alice,
        ResourceRef(kind="workflow", id="wf-1", metadata={"format": "yaml", "task_count": 2}),
    )
    for task in ("t-1", "t-2"):
        await _register(
            fm, alice, ResourceRef(kind="task", id=task, metadata={"workflow_id": "wf-1"})
        )
    walk.check("registrar: WORKFLOW wf-1 and TASKs t-1, t-2 owned by alice", True)
    await walk.allowed(
        "bob", "require(workflow, -, write)", _require(fm, bob, "workflow", None, "write")
    )
    await walk.denied("bob", "submission guards (Runmesh balance 0)", _guards(fm, bob), 402)

    walk.section("reads: lists are filtered by ownership, fleets are shared")
    await walk.allowed(
        "alice",
        "accessible_ids(workflow, read)",
        _accessible(fm, alice, "workflow", "read"),
        "{wf-1}",
    )
    await walk.allowed(
        "bob", "accessible_ids(workflow, read)", _accessible(fm, bob, "workflow", "read"), "{}"
    )
    await walk.allowed(
        "admin",
        "accessible_ids(workflow, read)",
        _accessible(fm, admin, "workflow", "read"),
        "None (no filter: sees every one)",
    )
    await walk.allowed(
        "alice", "require(workflow, wf-1, read)", _require(fm, alice, "workflow", "wf-1", "read")
    )
    await walk.denied(
        "bob", "require(workflow, wf-1, read)", _require(fm, bob, "workflow", "wf-1", "read"), 403
    )
    await walk.allowed(
        "alice",
        "require(result, t-1, read) via the TASK grant",
        _require(fm, alice, "result", "t-1", "read"),
    )
    await walk.denied(
        "bob", "require(result, t-1, read)", _require(fm, bob, "result", "t-1", "read"), 403
    )
    await walk.allowed(
        "bob",
        "accessible_ids(node, read)",
        _accessible(fm, bob, "node", "read"),
        "None (no filter: sees every one)",
    )
    await walk.allowed(
        "bob", "require(worker, worker-1, read)", _require(fm, bob, "worker", "worker-1", "read")
    )

    walk.section("writes and admin")
    await walk.denied(
        "bob",
        "require(workflow, wf-1, cancel)",
        _require(fm, bob, "workflow", "wf-1", "cancel"),
        403,
    )
    await walk.allowed(
        "alice",
        "require(workflow, wf-1, cancel)",
        _require(fm, alice, "workflow", "wf-1", "cancel"),
    )
    await walk.allowed(
        "admin",
        "require(workflow, wf-1, cancel)",
        _require(fm, admin, "workflow", "wf-1", "cancel"),
    )
    await walk.denied(
        "alice", "require(system, -, admin)", _require(fm, alice, "system", None, "admin"), 403
    )
    await walk.allowed(
        "admin", "require(system, -, admin)", _require(fm, admin, "system", None, "admin")
    )
    fleet = await _chain(fm, f"Bearer {people['fleet'].token}")
    assert fleet is not None
    await walk.allowed(
        "fleet",
        "require(result, -, write) (worker posts a result)",
        _require(fm, fleet, "result", None, "write"),
    )
    await walk.allowed(
        "fleet",
        "require(node, -, write) (node registers)",
        _require(fm, fleet, "node", None, "write"),
    )
    await walk.denied(
        "alice", "require(node, -, write)", _require(fm, alice, "node", None, "write"), 403
    )

    walk.section("dispatch: supplier attribution")
    worker = _Worker("worker-1", "node-1", "supplier-acme", "eu-1", ["gpu"], {})
    supplier = next((s for r in suppliers if (s := r.resolve(worker)) is not None), None)
    walk.check(
        "supplier of worker-1 (namespace supplier-acme)",
        supplier == "supplier-acme",
        repr(supplier),
    )

    walk.section("billing: terminal task -> usage row -> Runmesh")
    row = {
        "org_id": ORG, "principal_id": alice.principal_id, "supplier_id": supplier,
        "occurred_at": datetime.now(UTC), "cost": Decimal("0.42"), "task_id": "t-1",
        "runtime_sec": 30.6, "cost_per_hour": 49.41, "task_status": "success",
    }  # fmt: skip
    for sink in fm.usage_sinks:
        await sink.emit([row], log)
    got = await _wait_for(lambda: "t-1" in runmesh.entries, 10.0)
    entry = runmesh.entries.get("t-1", {})
    walk.check("Runmesh received the entry for t-1", got, _show_entry(entry))
    walk.check(
        "entry: alice's email, workflow wf-1, cost as a string, whole seconds",
        entry.get("userEmail") == people["alice"].email and entry.get("workflowId") == "wf-1"
        and entry.get("cost") == "0.42" and isinstance(entry.get("durationSec"), int),
    )  # fmt: skip
    walk.check(
        "alice's Runmesh balance charged once",
        runmesh.balances[people["alice"].email] == Decimal("99.58"),
        str(runmesh.balances[people["alice"].email]),
    )
    for sink in fm.usage_sinks:
        await sink.emit([row], log)  # FlowMesh never retries, but a replay must not double-bill
    await asyncio.sleep(0.5)
    walk.check(
        "the same row again is not charged twice",
        runmesh.balances[people["alice"].email] == Decimal("99.58"),
        f"balance {runmesh.balances[people['alice'].email]}, "
        f"{len(runmesh.entry_calls())} entry call(s)",
    )


def _show_entry(entry: dict[str, Any]) -> str:
    keys = ("userEmail", "userSub", "taskId", "workflowId", "cost", "durationSec", "taskStatus")
    return ", ".join(f"{k}={entry.get(k)!r}" for k in keys if k in entry)


# -- Lumilake ------------------------------------------------------------------------------


_LAKE_USER: Final = (
    "lumilake:jobs:submit",
    "lumilake:jobs:cancel",
    "lumilake:trace:read",
    "lumilake:workers:read",
)
LUMILAKE_SCOPES: Final = {
    "admin": ("lumilake:admin",),
    "alice": _LAKE_USER,
    "bob": _LAKE_USER,
    "fleet": ("lumilake:workers:read",),
}


class _Graph:
    def serialize(self) -> dict[str, Any]:
        return {
            "nodes": ["scan", "join", "aggregate"],
            "edges": [["scan", "join"], ["join", "aggregate"]],
        }


async def walk_lumilake(walk: Walk, data: Path) -> None:
    with FakeLumId() as lumid:
        people = _people(lumid, LUMILAKE_SCOPES)
        tokens = [people["fleet"].token, people["alice"].token]
        with FakeOptimizer(tokens=tokens) as optimizer:
            db = data / "lumilake" / "lumid_acl.sqlite"
            os.environ.update(
                {
                    "LUMILAKE_PLUGINS": "lumid_lumilake_plugin",
                    "LUMILAKE_REQUIRE_IDENTITY_PROVIDER": "1",
                    "LUM_ID_BASE_URL": lumid.url,
                    "LUMID_ACL_DB_PATH": str(db),
                    "LUMILAKE_REMOTE_OPTIMIZER_URL": optimizer.url,
                    "LUMILAKE_RUNTIME_TOKEN": people["fleet"].token,
                }
            )
            walk.section(
                f"Lumilake host, lumid-lumilake-plugin {version('lumid-lumilake-plugin')} "
                f"on lumid-core {version('lumid-core')}"
            )
            walk.note(f"lum.id at {lumid.url}, remote optimizer at {optimizer.url}, grants in {db}")
            async with AsyncExitStack() as lifespan:
                loaded, skipped = await load_lumilake(os.environ["LUMILAKE_PLUGINS"], lifespan)
                walk.check(
                    "load: __import__(fromlist=['install']) + __dict__.get('install'), entered",
                    len(loaded) == 1 and not skipped,
                    "passes lumid_hooks.HookBindings and lumilake_hook.HookBindings"
                    if loaded and loaded[0].extra
                    else f"optimizer_providers NOT taken; skipped={skipped}",
                )
                if not loaded:
                    return
                for line in describe("lumilake", loaded[0]):
                    walk.note(line)
                catalog = optimizer.catalog_calls()
                walk.check(
                    "install fetched the optimizer catalog once, with LUMILAKE_RUNTIME_TOKEN",
                    len(catalog) == 1
                    and catalog[0].headers.get("authorization")
                    == f"Bearer {people['fleet'].token}",
                )
                await _lumilake_session(
                    walk, loaded[0].bindings, loaded[0].extra, optimizer, people
                )
            walk.check("shutdown: the lifespan exited the plugin", True)
            grants = _print_grants(walk, db)
            walk.check(
                "alice owns job-1, its trace and its artifact",
                {("job", "job-1", "alice"), ("trace", "trace-1", "alice"),
                 ("artifact", "job-1/result.parquet", "alice")}
                <= {(k, i, p) for k, i, p, _lv in grants},
            )  # fmt: skip


async def _lumilake_session(
    walk: Walk,
    ll: Any,
    providers: Sequence[Any],
    optimizer: FakeOptimizer,
    people: dict[str, Person],
) -> None:
    lumilake_hook = importlib.import_module("lumilake_hook")
    walk.section("startup: reconcile with the live JOB refs (none yet)")
    await _reconcile(ll, [])
    walk.check("reconcile([]) at startup", True)

    walk.section("identity: bearer (case-insensitive scheme) -> principal")
    who: dict[str, PrincipalContext] = {}
    for label, scheme in (
        ("admin", "Bearer"),
        ("alice", "bearer"),
        ("bob", "BEARER"),
        ("fleet", "Bearer"),
    ):
        principal = await _chain(ll, f"{scheme} {people[label].token}", any_case=True)
        walk.check(
            f"{label:<6} resolved",
            principal is not None and principal.principal_id == people[label].sub,
            f"{principal.principal_id} ({principal.principal_type}), scopes={principal.scopes}"
            if principal
            else "None",
        )
        assert principal is not None
        who[label] = principal
    walk.check("no bearer -> no principal (host answers 401)", await _chain(ll, "") is None)
    alice, bob, admin, fleet = who["alice"], who["bob"], who["admin"], who["fleet"]

    walk.section("POST /jobs: kind check, then JOB, TRACE and ARTIFACT registered")
    await walk.allowed("alice", "require(job, -, write)", _require(ll, alice, "job", None, "write"))
    await _register(
        ll,
        alice,
        ResourceRef(kind="job", id="job-1", metadata={"workflow_count": 1, "status": "queued"}),
    )
    await _register(
        ll, alice, ResourceRef(kind="trace", id="trace-1", metadata={"job_id": "job-1"})
    )
    await _register(
        ll,
        alice,
        ResourceRef(
            kind="artifact",
            id="job-1/result.parquet",
            metadata={"job_id": "job-1", "uri": "s3://lake/job-1/result.parquet"},
        ),
    )
    walk.check("registrar: job-1, trace-1, job-1/result.parquet owned by alice", True)
    await walk.denied(
        "fleet",
        "require(job, -, write) (no jobs scope)",
        _require(ll, fleet, "job", None, "write"),
        403,
    )

    walk.section("reads: ownership filters, the worker fleet is shared")
    await walk.allowed(
        "alice", "accessible_ids(job, read)", _accessible(ll, alice, "job", "read"), "{job-1}"
    )
    await walk.allowed(
        "bob", "accessible_ids(job, read)", _accessible(ll, bob, "job", "read"), "{}"
    )
    await walk.allowed(
        "admin",
        "accessible_ids(job, read)",
        _accessible(ll, admin, "job", "read"),
        "None (no filter: sees every one)",
    )
    await walk.allowed(
        "alice", "require(job, job-1, read)", _require(ll, alice, "job", "job-1", "read")
    )
    await walk.denied(
        "bob", "require(job, job-1, read)", _require(ll, bob, "job", "job-1", "read"), 403
    )
    await walk.allowed(
        "alice",
        "require(artifact, job-1/result.parquet, read)",
        _require(ll, alice, "artifact", "job-1/result.parquet", "read"),
    )
    await walk.denied(
        "bob",
        "require(artifact, job-1/result.parquet, read)",
        _require(ll, bob, "artifact", "job-1/result.parquet", "read"),
        403,
    )
    await walk.allowed(
        "alice", "require(trace, trace-1, read)", _require(ll, alice, "trace", "trace-1", "read")
    )
    await walk.denied(
        "bob", "require(trace, trace-1, read)", _require(ll, bob, "trace", "trace-1", "read"), 403
    )
    await walk.allowed(
        "bob",
        "accessible_ids(worker, read)",
        _accessible(ll, bob, "worker", "read"),
        "None (no filter: sees every one)",
    )
    await walk.denied(
        "alice",
        "require(table, sales, read) (no operator grant)",
        _require(ll, alice, "table", "sales", "read"),
        403,
    )

    walk.section("cancel")
    await walk.denied(
        "bob", "require(job, job-1, cancel)", _require(ll, bob, "job", "job-1", "cancel"), 403
    )
    await walk.allowed(
        "alice", "require(job, job-1, cancel)", _require(ll, alice, "job", "job-1", "cancel")
    )
    await walk.allowed(
        "admin", "require(job, job-1, cancel)", _require(ll, admin, "job", "job-1", "cancel")
    )

    walk.section("optimizer: create_optimizer('remote-greedy') the host's way")
    wanted = "remote-greedy"
    handle: Any = None
    for provider in providers:
        names = {n.lower(): n for n in provider.list_optimizers()}
        if wanted in names:
            handle = provider.create_optimizer(names[wanted], logger=log)
            walk.check("provider offers it", True, f"{provider.name}: {sorted(names.values())}")
            break
    if not walk.check("an optimizer handle was created", handle is not None):
        return
    # The host's auth middleware sets the caller's bearer; the job thread inherits it.
    lumilake_hook.runtime_token_var.set(people["alice"].token)
    schedule = await asyncio.to_thread(
        handle.generate_schedule, _Graph(), ["worker-1"], {"worker-1": {"cpus": 8}}, None
    )
    walk.check(
        "generate_schedule -> lumilake_hook.Schedule from the remote optimizer",
        isinstance(schedule, lumilake_hook.Schedule)
        and schedule.worker_assignment == optimizer.worker_assignment,
        repr(schedule),
    )
    calls = optimizer.schedule_calls()
    walk.check(
        "the schedule request carried alice's bearer, not the service token",
        len(calls) == 1
        and calls[0].headers.get("authorization") == f"Bearer {people['alice'].token}",
    )
    walk.check(
        "usage: Lumilake jobs are not billed through Runmesh (no usage sink)",
        len(ll.usage_sinks) == 0,
    )


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def main(argv: Sequence[str]) -> int:
    logging.basicConfig(
        level=logging.WARNING, format="        log %(levelname)s %(name)s: %(message)s"
    )
    if list(argv) == ["--versions"]:
        names = ("lumid-flowmesh-plugin", "lumid-lumilake-plugin", "lumid-core", "lumid-hooks",
                 "flowmesh-hook", "lumilake-hook")  # fmt: skip
        print(", ".join(f"{n} {v}" for n in names if (v := _installed(n))))
        return 0
    if len(argv) != 1 or argv[0] not in ("flowmesh", "lumilake"):
        print("usage: python -m lumid_demo.walk flowmesh|lumilake", file=sys.stderr)
        return 2
    walk = Walk()
    with tempfile.TemporaryDirectory(prefix="lumid-demo-data-") as data:
        runner = walk_flowmesh if argv[0] == "flowmesh" else walk_lumilake
        asyncio.run(runner(walk, Path(data)))
    if walk.failures:
        print(
            f"\n{argv[0]}: {len(walk.failures)} of {walk.steps} steps did NOT behave as expected:"
        )
        for failure in walk.failures:
            print(f"  - {failure}")
        return 1
    print(f"\n{argv[0]}: all {walk.steps} steps behaved as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The two sessions as data: who takes part, which hook each step calls, what is expected.

A `Scenario` names its host, how to stage the emulators and the operator's
environment, the sections of steps in the order a real session makes the calls, and
the grants the store must hold afterwards. `walk.play` runs any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Final, Literal

from lumid_hooks import ResourceRef

from lumid_fakes import FakeLumId, FakeOptimizer, FakeRunmesh

from .host_steps import (
    Bill,
    BillAgain,
    CatalogFetched,
    NoUsageSinks,
    Optimize,
    Supplier,
    UsageRowSpec,
    WorkerStub,
)
from .session import EVERY, Person, Section
from .steps import (
    Cached,
    Guards,
    Listing,
    NoPrincipal,
    Reconcile,
    Register,
    Require,
    Resolve,
    Revoked,
)

__all__ = ["FLOWMESH", "LUMILAKE", "SCENARIOS", "Scenario", "Stage"]

ORG: Final = "lumid"

ACCOUNTS: Final = {
    "admin": ("ada", "ada@lumid.example", "admin"),
    "alice": ("alice", "alice@lumid.example", "user"),
    "bob": ("bob", "bob@lumid.example", "user"),
    "fleet": ("svc-fleet", "fleet@lumid.example", "user"),
}
"""label -> (lum.id subject, email, role); each host gives them its own scopes."""


@dataclass
class Stage:
    """The running emulators and the environment an operator would set for the host."""

    env: dict[str, str]
    people: dict[str, Person]
    lumid: FakeLumId
    db: Path
    where: str
    """One line naming the emulators' URLs and the grant database."""
    runmesh: FakeRunmesh | None = None
    optimizer: FakeOptimizer | None = None


@dataclass(frozen=True)
class Scenario:
    """One host's session: staging, the sections of steps, the grants expected after."""

    host: Literal["flowmesh", "lumilake"]
    dist: str
    plugins_var: str
    stage: Callable[[Path], AbstractContextManager[Stage]]
    sections: tuple[Section, ...]
    owned: frozenset[tuple[str, str, str]]
    """(kind, id, principal) rows the grant store must hold after shutdown."""
    owned_says: str
    shutdown_says: str
    extra_field: str = ""
    """The bindings field only this host takes (printed when the gate does not pass)."""


def _people(lumid: FakeLumId, scopes: Mapping[str, tuple[str, ...]]) -> dict[str, Person]:
    people = {}
    for label, (sub, email, role) in ACCOUNTS.items():
        token = lumid.add_token(sub, scopes=list(scopes[label]), email=email, role=role)
        people[label] = Person(label, sub, email, role, scopes[label], token)
    return people


def _ref(kind: str, id: str, **metadata: object) -> ResourceRef:
    return ResourceRef(kind=kind, id=id, metadata=metadata)


# -- FlowMesh ------------------------------------------------------------------------------

_FM_USER: Final = (
    "flowmesh:workflows:read", "flowmesh:workflows:write", "flowmesh:tasks:read",
    "flowmesh:results:read", "flowmesh:nodes:read", "flowmesh:workers:read",
)  # fmt: skip
FLOWMESH_SCOPES: Final = {
    "admin": ("flowmesh:admin",),
    "alice": _FM_USER,
    "bob": _FM_USER,
    "fleet": (
        "flowmesh:results:write", "flowmesh:nodes:read", "flowmesh:nodes:write",
        "flowmesh:workers:read", "flowmesh:workers:write",
    ),
}  # fmt: skip


@contextmanager
def _flowmesh_stage(data: Path) -> Iterator[Stage]:
    with FakeLumId() as lumid, FakeRunmesh() as runmesh:
        people = _people(lumid, FLOWMESH_SCOPES)
        runmesh.add_user(people["alice"].email, "100")
        runmesh.add_user(people["bob"].email, "0")
        runmesh.add_user(people["admin"].email, "100")
        db = data / "flowmesh" / "lumid_acl.sqlite"
        env = {
            "FLOWMESH_PLUGINS": "lumid_flowmesh_plugin",
            "FLOWMESH_API_KEY": people["fleet"].token,
            "LUM_ID_BASE_URL": lumid.url,
            "LUMID_ACL_DB_PATH": str(db),
            "RUNMESH_BILLING_BASE_URL": runmesh.url,
            "FLOWMESH_BRIDGE_SECRET": runmesh.secret,
            "LUMID_BALANCE_GUARD": "on",
            "LUMID_BILLING_FLUSH_SECONDS": "0.1",
        }
        where = f"lum.id at {lumid.url}, Runmesh at {runmesh.url}, grants in {db}"
        yield Stage(env, people, lumid, db, where, runmesh=runmesh)


_ALICE_T1: Final = UsageRowSpec(
    org_id=ORG, who="alice", supplier_id="supplier-acme", task_id="t-1", cost=Decimal("0.42"),
    runtime_sec=30.6, cost_per_hour=49.41, task_status="success",
)  # fmt: skip

FLOWMESH: Final = Scenario(
    host="flowmesh",
    dist="lumid-flowmesh-plugin",
    plugins_var="FLOWMESH_PLUGINS",
    stage=_flowmesh_stage,
    extra_field="supplier_resolvers",
    sections=(
        Section("startup: system principal, fleet registration, one reconcile sweep", (
            Resolve("fleet", env_var="FLOWMESH_API_KEY",
                    says="FLOWMESH_API_KEY resolves to the fleet's service account"),
            Register("fleet", (_ref("node", "node-1", role="root"),
                               _ref("worker", "worker-1", gpu="a100")),
                     "registrar: NODE node-1 and WORKER worker-1 registered by the fleet"),
            Reconcile((_ref("node", "node-1"), _ref("worker", "worker-1")),
                      "reconcile: startup sweep with the live NODE and WORKER refs"),
        )),
        Section("identity: Authorization header -> principal", (
            Resolve("admin"),
            Resolve("alice"),
            Resolve("bob"),
            NoPrincipal(None, "no header -> no principal (host answers 401), no lum.id call",
                        offline=True),
            Revoked(("flowmesh:admin",)),
            Cached("alice", "alice again -> served from the 60 s cache"),
        )),
        Section("POST /workflows: kind check, balance guard, registrar", (
            Require("alice", "workflow", None, "write"),
            Guards("alice", "Runmesh balance 100"),
            Register("alice", (_ref("workflow", "wf-1", format="yaml", task_count=2),
                               _ref("task", "t-1", workflow_id="wf-1"),
                               _ref("task", "t-2", workflow_id="wf-1")),
                     "registrar: WORKFLOW wf-1 and TASKs t-1, t-2 owned by alice"),
            Require("bob", "workflow", None, "write"),
            Guards("bob", "Runmesh balance 0", denied=402),
        )),
        Section("reads: lists are filtered by ownership, fleets are shared", (
            Listing("alice", "workflow", "read", frozenset({"wf-1"})),
            Listing("bob", "workflow", "read", frozenset()),
            Listing("admin", "workflow", "read", EVERY),
            Require("alice", "workflow", "wf-1", "read"),
            Require("bob", "workflow", "wf-1", "read", denied=403),
            Require("alice", "result", "t-1", "read", why="via the TASK grant"),
            Require("bob", "result", "t-1", "read", denied=403),
            Listing("bob", "node", "read", EVERY),
            Require("bob", "worker", "worker-1", "read"),
        )),
        Section("writes and admin", (
            Require("bob", "workflow", "wf-1", "cancel", denied=403),
            Require("alice", "workflow", "wf-1", "cancel"),
            Require("admin", "workflow", "wf-1", "cancel"),
            Require("alice", "system", None, "admin", denied=403),
            Require("admin", "system", None, "admin"),
            Require("fleet", "result", None, "write", why="(worker posts a result)"),
            Require("fleet", "node", None, "write", why="(node registers)"),
            Require("alice", "node", None, "write", denied=403),
        )),
        Section("dispatch: supplier attribution", (
            Supplier(WorkerStub("worker-1", "node-1", "supplier-acme", "eu-1", ["gpu"], {}),
                     "supplier-acme", "supplier of worker-1 (namespace supplier-acme)"),
        )),
        Section("billing: terminal task -> usage row -> Runmesh", (
            Bill(_ALICE_T1, workflow_id="wf-1", balance_after=Decimal("99.58")),
            BillAgain(_ALICE_T1, balance_after=Decimal("99.58")),
        )),
    ),
    shutdown_says="shutdown: the lifespan exited the plugin's context manager",
    owned=frozenset({
        ("workflow", "wf-1", "alice"), ("task", "t-1", "alice"), ("task", "t-2", "alice"),
        ("node", "node-1", "svc-fleet"), ("worker", "worker-1", "svc-fleet"),
    }),
    owned_says="alice owns wf-1 and its tasks; the fleet credential owns node-1 and worker-1",
)  # fmt: skip


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


@contextmanager
def _lumilake_stage(data: Path) -> Iterator[Stage]:
    with ExitStack() as stack:
        lumid = stack.enter_context(FakeLumId())
        people = _people(lumid, LUMILAKE_SCOPES)
        tokens = [people["fleet"].token, people["alice"].token]
        optimizer = stack.enter_context(FakeOptimizer(tokens=tokens))
        db = data / "lumilake" / "lumid_acl.sqlite"
        env = {
            "LUMILAKE_PLUGINS": "lumid_lumilake_plugin",
            "LUMILAKE_REQUIRE_IDENTITY_PROVIDER": "1",
            "LUM_ID_BASE_URL": lumid.url,
            "LUMID_ACL_DB_PATH": str(db),
            "LUMILAKE_REMOTE_OPTIMIZER_URL": optimizer.url,
            "LUMILAKE_RUNTIME_TOKEN": people["fleet"].token,
        }
        where = f"lum.id at {lumid.url}, remote optimizer at {optimizer.url}, grants in {db}"
        yield Stage(env, people, lumid, db, where, optimizer=optimizer)


_ARTIFACT: Final = "job-1/result.parquet"

LUMILAKE: Final = Scenario(
    host="lumilake",
    dist="lumid-lumilake-plugin",
    plugins_var="LUMILAKE_PLUGINS",
    stage=_lumilake_stage,
    extra_field="optimizer_providers",
    sections=(
        Section("startup: optimizer catalog, reconcile with the live JOB refs (none yet)", (
            CatalogFetched("fleet", "install fetched the optimizer catalog once, "
                                    "with LUMILAKE_RUNTIME_TOKEN"),
            Reconcile((), "reconcile([]) at startup"),
        )),
        Section("identity: bearer (case-insensitive scheme) -> principal", (
            Resolve("admin", "Bearer"),
            Resolve("alice", "bearer"),
            Resolve("bob", "BEARER"),
            Resolve("fleet", "Bearer"),
            NoPrincipal("", "no bearer -> no principal (host answers 401)"),
        )),
        Section("POST /jobs: kind check, then JOB, TRACE and ARTIFACT registered", (
            Require("alice", "job", None, "write"),
            Register("alice", (
                _ref("job", "job-1", workflow_count=1, status="queued"),
                _ref("trace", "trace-1", job_id="job-1"),
                _ref("artifact", _ARTIFACT, job_id="job-1", uri=f"s3://lake/{_ARTIFACT}"),
            ), f"registrar: job-1, trace-1, {_ARTIFACT} owned by alice"),
            Require("fleet", "job", None, "write", denied=403, why="(no jobs scope)"),
        )),
        Section("reads: ownership filters, the worker fleet is shared", (
            Listing("alice", "job", "read", frozenset({"job-1"})),
            Listing("bob", "job", "read", frozenset()),
            Listing("admin", "job", "read", EVERY),
            Require("alice", "job", "job-1", "read"),
            Require("bob", "job", "job-1", "read", denied=403),
            Require("alice", "artifact", _ARTIFACT, "read"),
            Require("bob", "artifact", _ARTIFACT, "read", denied=403),
            Require("alice", "trace", "trace-1", "read"),
            Require("bob", "trace", "trace-1", "read", denied=403),
            Listing("bob", "worker", "read", EVERY),
            Require("alice", "table", "sales", "read", denied=403, why="(no operator grant)"),
        )),
        Section("cancel", (
            Require("bob", "job", "job-1", "cancel", denied=403),
            Require("alice", "job", "job-1", "cancel"),
            Require("admin", "job", "job-1", "cancel"),
        )),
        Section("optimizer: create_optimizer('remote-greedy') the host's way", (
            Optimize("remote-greedy", "alice", ("worker-1",), {"worker-1": {"cpus": 8}}),
            NoUsageSinks("usage: Lumilake jobs are not billed through Runmesh (no usage sink)"),
        )),
    ),
    shutdown_says="shutdown: the lifespan exited the plugin",
    owned=frozenset({
        ("job", "job-1", "alice"), ("trace", "trace-1", "alice"),
        ("artifact", _ARTIFACT, "alice"),
    }),
    owned_says="alice owns job-1, its trace and its artifact",
)  # fmt: skip

SCENARIOS: Final[Mapping[str, Scenario]] = {s.host: s for s in (FLOWMESH, LUMILAKE)}
"""Every scenario, by host name (the walk's command-line argument)."""

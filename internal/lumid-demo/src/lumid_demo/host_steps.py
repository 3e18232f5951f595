"""The host-specific steps: FlowMesh's supplier attribution and billing, Lumilake's optimizer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from .session import Session, log

__all__ = [
    "Bill",
    "BillAgain",
    "CatalogFetched",
    "NoUsageSinks",
    "Optimize",
    "Supplier",
    "UsageRowSpec",
    "WorkerStub",
]


# -- dispatch and billing (FlowMesh) ---------------------------------------------------------


@dataclass
class WorkerStub:
    """What FlowMesh hands a SupplierResolver (flowmesh_hook.WorkerView)."""

    id: str
    node_id: str
    namespace: str
    cluster: str
    tags: list[str]
    env: dict[str, object]


@dataclass(frozen=True)
class Supplier:
    """The first resolver's non-None answer for `worker` must be `expect`."""

    worker: WorkerStub
    expect: str | None
    says: str

    async def play(self, s: Session) -> None:
        """Resolve synchronously, as FlowMesh's dispatcher does."""
        found = next((x for r in s.suppliers if (x := r.resolve(self.worker)) is not None), None)
        s.walk.check(self.says, found == self.expect, repr(found))


@dataclass(frozen=True)
class UsageRowSpec:
    """One FlowMesh usage row (flowmesh_hook.UsageRow), occurred_at stamped when emitted."""

    org_id: str
    who: str
    supplier_id: str | None
    task_id: str
    cost: Decimal
    runtime_sec: float
    cost_per_hour: float
    task_status: str

    def row(self, s: Session) -> dict[str, object]:
        """The row the host emits, with `who`'s principal id."""
        return {
            "org_id": self.org_id, "principal_id": s.principal(self.who).principal_id,
            "supplier_id": self.supplier_id, "occurred_at": datetime.now(UTC),
            "cost": self.cost, "task_id": self.task_id, "runtime_sec": self.runtime_sec,
            "cost_per_hour": self.cost_per_hour, "task_status": self.task_status,
        }  # fmt: skip


async def _emit(s: Session, spec: UsageRowSpec) -> None:
    row = spec.row(s)
    for sink in s.bindings.usage_sinks:
        await sink.emit([row], log)


async def _wait_for(cond: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


def _show_entry(entry: Mapping[str, object]) -> str:
    keys = ("userEmail", "userSub", "taskId", "workflowId", "cost", "durationSec", "taskStatus")
    return ", ".join(f"{k}={entry.get(k)!r}" for k in keys if k in entry)


@dataclass(frozen=True)
class Bill:
    """A terminal task's row must reach Runmesh as one entry, charged once."""

    spec: UsageRowSpec
    workflow_id: str
    balance_after: Decimal
    within_seconds: float = 10.0

    async def play(self, s: Session) -> None:
        """Emit to every sink, wait for the entry, check its fields and the balance."""
        runmesh = s.need_runmesh()
        person = s.people[self.spec.who]
        await _emit(s, self.spec)
        task = self.spec.task_id
        got = await _wait_for(lambda: task in runmesh.entries, self.within_seconds)
        entry: Mapping[str, object] = runmesh.entries.get(task, {})
        s.walk.check(f"Runmesh received the entry for {task}", got, _show_entry(entry))
        s.walk.check(
            f"entry: {self.spec.who}'s email, workflow {self.workflow_id}, "
            "cost as a string, whole seconds",
            entry.get("userEmail") == person.email
            and entry.get("workflowId") == self.workflow_id
            and entry.get("cost") == str(self.spec.cost)
            and isinstance(entry.get("durationSec"), int),
        )
        balance = runmesh.balances[person.email]
        s.walk.check(
            f"{self.spec.who}'s Runmesh balance charged once",
            balance == self.balance_after,
            str(balance),
        )


@dataclass(frozen=True)
class BillAgain:
    """The same row again (a replay): the balance must not move."""

    spec: UsageRowSpec
    balance_after: Decimal
    settle_seconds: float = 0.5

    async def play(self, s: Session) -> None:
        """Emit again, give the outbox time to deliver, compare the balance."""
        runmesh = s.need_runmesh()
        email = s.people[self.spec.who].email
        await _emit(s, self.spec)  # FlowMesh never retries, but a replay must not double-bill
        await asyncio.sleep(self.settle_seconds)
        balance = runmesh.balances[email]
        s.walk.check(
            "the same row again is not charged twice",
            balance == self.balance_after,
            f"balance {balance}, {len(runmesh.entry_calls())} entry call(s)",
        )


@dataclass(frozen=True)
class NoUsageSinks:
    """The plugin contributes no usage sink."""

    says: str

    async def play(self, s: Session) -> None:
        """Count the bindings' usage sinks."""
        s.walk.check(self.says, len(s.bindings.usage_sinks) == 0)


# -- optimizer (Lumilake) --------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogFetched:
    """install() asked the remote optimizer for its catalog once, with `who`'s token."""

    who: str
    says: str

    async def play(self, s: Session) -> None:
        """Read the optimizer emulator's recorded catalog requests."""
        calls = s.need_optimizer().catalog_calls()
        bearer = f"Bearer {s.people[self.who].token}"
        s.walk.check(self.says, len(calls) == 1 and calls[0].headers.get("authorization") == bearer)


class _Graph:
    """The smallest job graph `RemoteOptimizer` accepts (it calls `serialize()`)."""

    def serialize(self) -> dict[str, object]:
        return {
            "nodes": ["scan", "join", "aggregate"],
            "edges": [["scan", "join"], ["join", "aggregate"]],
        }


@dataclass(frozen=True)
class Optimize:
    """`create_optimizer(name)` the host's way, then a schedule for `who`'s job: it must
    come from the remote optimizer and carry `who`'s bearer, not the service token."""

    name: str
    who: str
    workers: tuple[str, ...]
    profiles: Mapping[str, Mapping[str, int]]

    async def play(self, s: Session) -> None:
        """Look the name up case-insensitively, create the handle, schedule in a thread."""
        import lumilake_hook  # only in the Lumilake venv: imported when this step runs

        remote = s.need_optimizer()
        handle = None
        for provider in s.optimizers:
            names = {n.lower(): n for n in provider.list_optimizers()}
            if self.name in names:
                handle = provider.create_optimizer(names[self.name], logger=log)
                label: str = getattr(provider, "name", type(provider).__name__)
                s.walk.check("provider offers it", True, f"{label}: {sorted(names.values())}")
                break
        if not s.walk.check("an optimizer handle was created", handle is not None):
            return
        assert handle is not None
        # The host's auth middleware sets the caller's bearer; the job thread inherits it.
        reset = lumilake_hook.runtime_token_var.set(s.people[self.who].token)
        try:
            profiles = {w: dict(p) for w, p in self.profiles.items()}
            schedule = await asyncio.to_thread(
                handle.generate_schedule, _Graph(), list(self.workers), profiles, None
            )
        finally:
            lumilake_hook.runtime_token_var.reset(reset)
        s.walk.check(
            "generate_schedule -> lumilake_hook.Schedule from the remote optimizer",
            isinstance(schedule, lumilake_hook.Schedule)
            and schedule.worker_assignment == remote.worker_assignment,
            repr(schedule),
        )
        calls = remote.schedule_calls()
        s.walk.check(
            f"the schedule request carried {self.who}'s bearer, not the service token",
            len(calls) == 1
            and calls[0].headers.get("authorization") == f"Bearer {s.people[self.who].token}",
        )

"""Runmesh billing that loses nothing: usage rows -> durable outbox -> Runmesh.

`emit()` turns FlowMesh's usage rows into outbox rows keyed by task id and writes
them in one group commit, then returns: it never waits on Runmesh. The outbox
worker (`lumid_core.outbox.OutboxWorker`) posts them with bounded concurrency and
backoff; `deliver()` below addresses each row by the principal's email as recorded
by identity (the `principals` table) and classifies Runmesh's reply.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from flowmesh_hook import UsageRow

from lumid_core import Database, PrincipalDirectory
from lumid_core.outbox import (
    Deliver,
    Held,
    NewEntry,
    Outbox,
    OutboxStats,
    OutboxWorker,
    Outcome,
    RateLimitedLog,
)
from lumid_core.outbox import OutboxEntry as Entry
from lumid_core.store.parents import ParentLinks

from .registrar import workflow_of

if TYPE_CHECKING:  # asyncpg is imported only when LUMID_DATABASE_URL selects it
    from lumid_core.pg import PgOutbox
from .runmesh import RunmeshClient
from .settings import FlowMeshSettings

__all__ = [
    "BILLING_SINK",
    "UNKNOWN_WORKFLOW_ID",
    "RunmeshBilling",
    "RunmeshUsageSink",
    "entry_body",
    "open_billing",
    "row_to_entry",
]

BILLING_SINK: Final = "runmesh"
"""The outbox sink name of FlowMesh's Runmesh entries (`lumid billing --sink runmesh`)."""

UNKNOWN_WORKFLOW_ID: Final = ""
"""Sent as `workflowId` when the task's workflow was never registered with this plugin."""

_BODY_FIELDS: Final = (
    "userSub",
    "taskId",
    "workflowId",
    "cost",
    "durationSec",
    "costPerHour",
    "taskStatus",
)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _duration(value: object) -> int:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    if not math.isfinite(seconds) or seconds <= 0:
        return 0
    return int(seconds + 0.5)


def _number(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _cost(value: object) -> str:
    if isinstance(value, Decimal):
        cost = value
    elif isinstance(value, int | str) and not isinstance(value, bool):
        cost = Decimal(str(value))
    elif isinstance(value, float):
        cost = Decimal(repr(value))
    else:
        raise TypeError(f"cost is a {type(value).__name__}, not a Decimal")
    if not cost.is_finite():  # NaN or Infinity: no amount anyone can be charged
        raise ValueError(f"cost {cost} is not a finite amount")
    return str(cost)


class _Fields:
    """Read a usage row given as a mapping (FlowMesh's TypedDict) or an object."""

    __slots__ = ("_row",)

    def __init__(self, row: object) -> None:
        self._row = row

    def get(self, name: str) -> Any:
        row = self._row
        if isinstance(row, Mapping):
            return row.get(name)
        return getattr(row, name, None)


def row_to_entry(raw: object, *, email_known: bool, workflow_id: str | None) -> NewEntry:
    """One FlowMesh usage row as an outbox row keyed by its task id (no secrets)."""
    row = _Fields(raw)
    task_id = _text(row.get("task_id"))
    principal_id = _text(row.get("principal_id"))
    occurred = row.get("occurred_at")
    payload: dict[str, Any] = {
        "taskId": task_id,
        "workflowId": workflow_id if workflow_id is not None else UNKNOWN_WORKFLOW_ID,
        "userSub": principal_id,
        "orgId": _text(row.get("org_id")),
        "supplierId": row.get("supplier_id") if isinstance(row.get("supplier_id"), str) else None,
        "occurredAt": occurred.isoformat() if isinstance(occurred, datetime) else _text(occurred),
        "durationSec": _duration(row.get("runtime_sec")),
        "costPerHour": _number(row.get("cost_per_hour")),
        "taskStatus": _text(row.get("task_status")),
    }
    problem = None
    try:
        payload["cost"] = _cost(row.get("cost"))
    except (TypeError, ValueError, ArithmeticError) as exc:
        payload["cost"] = _text(row.get("cost"))[:100]
        problem = f"invalid cost: {exc}"
    if not task_id:
        problem = "usage row has no task_id"
    elif not principal_id:
        problem = "usage row has no principal_id"
    key = task_id or "invalid-" + secrets.token_hex(8)
    if problem is not None:
        return NewEntry(key, payload, reason=problem, dead=True)
    if not email_known:
        return NewEntry(
            key, payload, hold_on=principal_id, reason=f"no email known for {principal_id}"
        )
    return NewEntry(key, payload)


def entry_body(payload: Mapping[str, Any], email: str) -> dict[str, Any]:
    """The JSON body of `POST /billing/flowmesh-entry` for one outbox payload."""
    body: dict[str, Any] = {"userEmail": email}
    for name in _BODY_FIELDS:
        body[name] = payload.get(name)
    return body


class RunmeshUsageSink:
    """`flowmesh_hook.FlowMeshUsageSink`: rows go to the durable outbox, nothing else."""

    def __init__(
        self,
        *,
        name: str,
        outbox: Outbox | PgOutbox,
        directory: PrincipalDirectory,
        parents: ParentLinks,
        worker: OutboxWorker | None = None,
    ) -> None:
        self.name = name
        self._outbox = outbox
        self._db = outbox.db
        self._directory = directory
        self._parents = parents
        self._worker = worker
        self._warn = RateLimitedLog(logging.getLogger(name.split(".", 1)[0]), 60.0)

    def __repr__(self) -> str:
        return f"RunmeshUsageSink(name={self.name!r})"

    async def emit(self, rows: Sequence[UsageRow], logger: logging.Logger) -> None:
        if not rows:
            return
        try:
            entries = []
            for row in rows:
                fields = _Fields(row)
                principal_id = _text(fields.get("principal_id"))
                task_id = _text(fields.get("task_id"))
                email = await self._directory.email_for(principal_id) if principal_id else None
                workflow_id = await workflow_of(self._parents, task_id) if task_id else None
                entries.append(
                    row_to_entry(row, email_known=email is not None, workflow_id=workflow_id)
                )
            await self._outbox.add(entries)
        except Exception as exc:  # never raise into the host; say loudly what is lost
            lost = ", ".join(
                f"{_text(_Fields(r).get('task_id'))}={_text(_Fields(r).get('cost'))}" for r in rows
            )
            logger.error(
                "%s: could not queue %d usage rows for billing (task=cost: %s) in %s=%s: %s",
                self.name,
                len(rows),
                lost[:1000],
                "LUMID_ACL_DB_PATH" if isinstance(self._db, Database) else "LUMID_DATABASE_URL",
                self._db.path,
                exc,
            )
            return
        for entry in entries:
            if entry.dead:
                self._warn.log(
                    logging.ERROR,
                    "invalid",
                    "%s: usage row %s kept as a dead letter, not billable: %s",
                    self.name,
                    entry.key,
                    entry.reason,
                )
            elif entry.hold_on is not None:
                self._warn.warning(
                    "held",
                    "%s: task %s held until the email of principal %s is known",
                    self.name,
                    entry.key,
                    entry.hold_on,
                )
        if self._worker is not None:
            self._worker.wake()


@dataclass(frozen=True)
class RunmeshBilling:
    """Everything billing opened at install; closed by `open_billing`'s exit."""

    sink: RunmeshUsageSink
    outbox: Outbox | PgOutbox
    worker: OutboxWorker
    client: RunmeshClient

    async def stats(self) -> OutboxStats:
        return await self.outbox.stats()

    async def drain(self, within: float | None = None) -> bool:
        """Wait until no row is pending (benchmarks, tests); False on timeout."""
        return await self.worker.drain(within)


def _delivery(
    client: RunmeshClient, directory: PrincipalDirectory, parents: ParentLinks
) -> Deliver:
    async def deliver(entry: Entry) -> Outcome:
        payload = entry.payload
        principal_id = _text(payload.get("userSub"))
        email = await directory.email_for(principal_id)
        if email is None:
            return Held(principal_id, f"no email known for {principal_id}")
        if not payload.get("workflowId"):
            late = await workflow_of(parents, entry.key)
            if late is not None:
                payload = {**payload, "workflowId": late}
        return await client.post_entry(entry_body(payload, email))

    return deliver


@asynccontextmanager
async def open_billing(
    settings: FlowMeshSettings,
    *,
    outbox: Outbox | PgOutbox,
    directory: PrincipalDirectory,
    parents: ParentLinks,
    plugin: str,
    logger: logging.Logger,
) -> AsyncIterator[RunmeshBilling]:
    """Start Runmesh billing; on exit flush within LUMID_BILLING_FLUSH_SECONDS."""
    base_url = settings.runmesh_billing_base_url
    if base_url is None or not settings.bridge_secret:
        raise ValueError(settings.billing_off_reason or "billing is off")
    client = RunmeshClient(
        base_url,
        settings.bridge_secret,
        delivery_timeout=settings.lumid_billing_timeout_seconds,
        delivery_concurrency=settings.lumid_billing_concurrency,
        guard_timeout=settings.lumid_balance_guard_timeout_seconds,
    )

    async def recheck() -> int:
        waiting = await outbox.held_on()
        known = [p for p in waiting if await directory.email_for(p) is not None]
        released = await outbox.release(known)
        if released:
            worker.wake()
        return released

    worker = OutboxWorker(
        outbox,  # type: ignore[arg-type]  # PgOutbox: the same methods (see lumid_core.pg.outbox)
        _delivery(client, directory, parents),
        logger=logger,
        name=f"{plugin}.billing",
        concurrency=settings.lumid_billing_concurrency,
        status_interval=settings.lumid_billing_status_interval_seconds,
        recheck=recheck,
        recheck_interval=settings.lumid_billing_held_recheck_seconds,
        base_delay=settings.lumid_billing_retry_base_seconds,
        max_delay=max(
            settings.lumid_billing_retry_max_seconds, settings.lumid_billing_retry_base_seconds
        ),
        retention_seconds=settings.lumid_billing_retention_days * 86400.0,
    )
    sink = RunmeshUsageSink(
        name=f"{plugin}.billing",
        outbox=outbox,
        directory=directory,
        parents=parents,
        worker=worker,
    )
    try:
        worker.start()
        yield RunmeshBilling(sink=sink, outbox=outbox, worker=worker, client=client)
    finally:
        try:
            await worker.stop(settings.lumid_billing_flush_seconds)
        finally:
            await client.aclose()

"""FlowMesh usage rows -> outbox rows (`row_to_entry`) and Runmesh bodies (`entry_body`).

Pure functions, no I/O: keyed by task id, no secret and no email in a payload, and
rows that cannot be billed as they are (no task id or principal, a cost that is not
a finite decimal, a cost or duration beyond `CostBounds`) born dead with the reason.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from lumid_core.outbox import NewEntry

__all__ = [
    "UNKNOWN_WORKFLOW_ID",
    "CostBounds",
    "describe_entry",
    "entry_body",
    "fields",
    "row_to_entry",
    "text",
]

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


def text(value: object) -> str:
    """`value` as text for a Runmesh body field ("" for None)."""
    return "" if value is None else str(value)


def _seconds(value: object) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    if not math.isfinite(seconds) or seconds <= 0:
        return 0.0
    return seconds


@dataclass(frozen=True)
class CostBounds:
    """The sanity bounds of a billable row (LUMID_BILLING_MAX_COST, ..._DURATION_SECONDS).

    A row outside them is parked as a dead letter with the reason at emit time; an
    operator who replays it (`lumid billing retry`) approves it: delivery does not
    check the bounds again.
    """

    max_cost: Decimal = Decimal("10000")
    max_duration_seconds: float = 30 * 86400.0

    def problem(self, cost: Decimal, runtime_sec: object) -> str | None:
        """Why a row with `cost` and `runtime_sec` is not billable as is, or None."""
        if cost < 0:
            return f"negative cost {cost} (a credit): not billed unless an operator replays it"
        if cost > self.max_cost:
            return (
                f"cost {cost} is above LUMID_BILLING_MAX_COST={self.max_cost}: "
                "not billed unless an operator replays it"
            )
        try:
            seconds = float(runtime_sec)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        if math.isnan(seconds) or seconds > self.max_duration_seconds:
            return (
                f"runtime_sec {runtime_sec} is above LUMID_BILLING_MAX_DURATION_SECONDS="
                f"{self.max_duration_seconds:g}: not billed unless an operator replays it"
            )
        return None


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


def fields(row: object) -> Fields:
    """Read a usage row given as a mapping (FlowMesh's TypedDict) or an object."""
    return Fields(row)


class Fields:
    """Read a usage row given as a mapping (FlowMesh's TypedDict) or an object."""

    __slots__ = ("_row",)

    def __init__(self, row: object) -> None:
        self._row = row

    def get(self, name: str) -> Any:
        row = self._row
        if isinstance(row, Mapping):
            return row.get(name)
        return getattr(row, name, None)


def row_to_entry(
    raw: object,
    *,
    email_known: bool,
    workflow_id: str | None,
    bounds: CostBounds | None = None,
) -> NewEntry:
    """One FlowMesh usage row as an outbox row keyed by its task id (no secrets).

    Rows that cannot be billed as they are (no task id or principal, a cost that is
    not a finite decimal, or outside `bounds`) are born dead, with the reason.
    """
    row = Fields(raw)
    runtime = row.get("runtime_sec")
    task_id = text(row.get("task_id"))
    principal_id = text(row.get("principal_id"))
    occurred = row.get("occurred_at")
    payload: dict[str, Any] = {
        "taskId": task_id,
        "workflowId": workflow_id if workflow_id is not None else UNKNOWN_WORKFLOW_ID,
        "userSub": principal_id,
        "orgId": text(row.get("org_id")),
        "supplierId": row.get("supplier_id") if isinstance(row.get("supplier_id"), str) else None,
        "occurredAt": occurred.isoformat() if isinstance(occurred, datetime) else text(occurred),
        "durationSec": int(_seconds(runtime) + 0.5),
        "costPerHour": _number(row.get("cost_per_hour")),
        "taskStatus": text(row.get("task_status")),
    }
    problem = None
    try:
        payload["cost"] = _cost(row.get("cost"))
    except (TypeError, ValueError, ArithmeticError) as exc:
        payload["cost"] = text(row.get("cost"))[:100]
        problem = f"invalid cost: {exc}"
    else:
        problem = (bounds or CostBounds()).problem(Decimal(payload["cost"]), runtime)
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


def describe_entry(entry: NewEntry) -> str:
    """`task <id> cost <cost>` of one outbox row (log lines about rows at risk)."""
    return f"task {entry.key} cost {entry.payload.get('cost')}"

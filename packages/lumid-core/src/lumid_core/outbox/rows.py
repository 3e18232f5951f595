"""What every outbox store shares: stored columns <-> records, outcomes -> column values."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

from .model import STATES, Dead, Delivered, Held, OutboxEntry, OutboxStats, Outcome, Retry

__all__ = [
    "COLUMNS",
    "SinkRows",
    "check_retry",
    "check_state",
    "entry_of",
    "outcome_columns",
    "payload_text",
    "stats_of",
]

COLUMNS: Final = (
    "sink, key, state, attempts, created_at, updated_at, reason, payload, hold_on, next_attempt_at"
)
"""The columns `entry_of` reads, in this order (the same names in every store)."""


class SinkRows[DB]:
    """Base of an outbox store: its database `db` and the (non-empty) sink it serves."""

    def __init__(self, db: DB, sink: str) -> None:
        if not sink:
            raise ValueError("an outbox needs a sink name")
        self.db = db
        self._sink = sink

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._sink!r}, {self.db!r})"

    @property
    def sink(self) -> str:
        """The sink these rows belong to."""
        return self._sink


def payload_text(payload: Mapping[str, Any]) -> str:
    """A payload as stored: compact JSON with sorted keys (`entry_of` reads it back)."""
    return json.dumps(dict(payload), separators=(",", ":"), sort_keys=True)


def entry_of(row: Any) -> OutboxEntry:
    """The record of a row read as `COLUMNS` (a tuple or an asyncpg Record)."""
    try:
        payload = json.loads(row[7])
    except ValueError:
        payload = {"unreadable": str(row[7])[:200]}
    return OutboxEntry(
        sink=row[0],
        key=row[1],
        state=row[2],
        attempts=int(row[3]),
        created_at=float(row[4]),
        updated_at=float(row[5]),
        reason=row[6],
        payload=payload if isinstance(payload, dict) else {"value": payload},
        hold_on=row[8],
        next_attempt_at=float(row[9]),
    )


def stats_of(rows: Iterable[Any]) -> OutboxStats:
    """`OutboxStats` from `(state, count, min(created_at))` rows grouped by state."""
    rows = list(rows)
    counts = {str(r[0]): int(r[1]) for r in rows}
    oldest = next((r[2] for r in rows if r[0] == "pending"), None)
    return OutboxStats(
        pending=counts.get("pending", 0),
        held=counts.get("held", 0),
        delivered=counts.get("delivered", 0),
        dead=counts.get("dead", 0),
        oldest_pending_age_seconds=(
            None if oldest is None else max(0.0, time.time() - float(oldest))
        ),
    )


def check_state(state: str | None) -> None:
    """ValueError unless `state` is None or one of `STATES`."""
    if state is not None and state not in STATES:
        raise ValueError(f"unknown outbox state {state!r}; expected one of {', '.join(STATES)}")


def check_retry(key: str | None, *, all_dead: bool) -> None:
    """ValueError unless a replay names exactly one of `key` or `all_dead=True`."""
    if (key is None) == (not all_dead):
        raise ValueError("retry needs exactly one of key=... or all_dead=True")


def outcome_columns(
    outcome: Outcome, now: float, next_attempt_at: float
) -> tuple[str, float, str | None, str | None]:
    """`(state, next_attempt_at, hold_on, reason)` a row takes on after `outcome`."""
    match outcome:
        case Delivered():
            return "delivered", now, None, None
        case Retry(reason=reason):
            return "pending", next_attempt_at, None, reason
        case Dead(reason=reason):
            return "dead", now, None, reason
        case Held(hold_on=hold_on, reason=reason):
            return "held", now, hold_on, reason

"""The outbox's records and delivery outcomes (pure data, no I/O).

The package (`lumid_core.outbox`) lists these names in its `__all__` and re-exports them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

STATES: Final = ("pending", "held", "delivered", "dead")
"""Every state an outbox row can be in."""


@dataclass(frozen=True)
class OutboxStats:
    """Row counts of one sink per state, and the age of its oldest pending row."""

    pending: int
    held: int
    delivered: int
    dead: int
    oldest_pending_age_seconds: float | None


@dataclass(frozen=True)
class OutboxEntry:
    """One stored row (payloads are JSON objects and never hold a secret)."""

    sink: str
    key: str
    state: str
    attempts: int
    created_at: float
    updated_at: float
    reason: str | None
    payload: dict[str, Any]
    hold_on: str | None = None
    next_attempt_at: float = 0.0


@dataclass(frozen=True)
class NewEntry:
    """A row to add: `hold_on` set means it starts held (e.g. waiting for an email)."""

    key: str
    payload: Mapping[str, Any]
    hold_on: str | None = None
    reason: str | None = None
    dead: bool = False  # born dead: kept for inspection, never sent until replayed

    @property
    def state(self) -> str:
        """The state the row is stored in."""
        return "dead" if self.dead else ("held" if self.hold_on is not None else "pending")


@dataclass(frozen=True)
class Delivered:
    """The sink accepted the row."""

    note: str | None = None


@dataclass(frozen=True)
class Retry:
    """A transient failure: try again after a backoff."""

    reason: str


@dataclass(frozen=True)
class Dead:
    """A permanent rejection: park the row until an operator replays it."""

    reason: str


@dataclass(frozen=True)
class Held:
    """Not deliverable yet: hold the row until `release(hold_on)`."""

    hold_on: str
    reason: str


type Outcome = Delivered | Retry | Dead | Held
type Deliver = Callable[[OutboxEntry], Awaitable[Outcome]]

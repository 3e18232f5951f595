"""The outbox store interface: what the delivery worker and the `lumid` CLI call.

`lumid_core.outbox.sqlite.Outbox` implements it on the plugin's SQLite database; a
shared PostgreSQL store implements the same protocol. Every method may raise the
store's error (e.g. `lumid_core.DatabaseError`) when the store cannot be reached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from typing import Protocol

from .model import NewEntry, OutboxEntry, OutboxStats, Outcome

__all__ = ["OutboxStore"]


class OutboxStore(Protocol):
    """The rows of one sink (`sink`), in a store shared by every process using it."""

    @property
    def sink(self) -> str:
        """The sink these rows belong to (e.g. "runmesh")."""
        ...

    async def add(self, entries: Sequence[NewEntry], *, now: float | None = None) -> int:
        """Durably add `entries` in one transaction; a key already present is left as is.

        Returns how many rows were inserted (== len(entries) means every key was new).
        """
        ...

    async def due(
        self, *, now: float | None = None, limit: int = 256, skip: int = 0
    ) -> list[OutboxEntry]:
        """Pending rows whose next attempt is due at `now`, earliest schedule first."""
        ...

    async def next_due_at(self) -> float | None:
        """When the earliest pending row is due (epoch seconds), or None."""
        ...

    async def pending_count(self) -> int:
        """How many rows are pending."""
        ...

    def mark(
        self, key: str, outcome: Outcome, *, next_attempt_at: float = 0.0
    ) -> Awaitable[object]:
        """Record one attempt's outcome on a pending row (a no-op if it is not pending).

        The write is queued when this is called (so marks issued together commit
        together); await the result to know it is durable.
        """
        ...

    def mark_many(self, marks: Sequence[tuple[str, Outcome, float]]) -> Awaitable[object]:
        """`mark` for many `(key, outcome, next_attempt_at)` at once.

        In one transaction where the store can (the worker records outcomes this way).
        """
        ...

    async def held_on(self) -> list[str]:
        """The distinct `hold_on` values of held rows."""
        ...

    async def release(self, hold_on: Iterable[str]) -> int:
        """Held rows waiting on any of `hold_on` become pending now; returns how many."""
        ...

    async def prune_delivered(self, older_than_seconds: float) -> int:
        """Forget delivered rows last updated more than `older_than_seconds` ago."""
        ...

    async def stats(self) -> OutboxStats:
        """Counts per state and the oldest pending row's age."""
        ...

    async def entries(self, *, state: str | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Rows (of one state when given), oldest first; ValueError on an unknown state."""
        ...

    async def entry(self, key: str) -> OutboxEntry | None:
        """The row stored under `key`, or None."""
        ...

    async def retry(self, *, key: str | None = None, all_dead: bool = False) -> int:
        """Replay dead letters (one `key`, or `all_dead=True`).

        Each row moves dead -> pending, due now, attempts reset. Returns the rows moved;
        raises ValueError unless exactly one of `key` and `all_dead` is given.
        """
        ...

"""The grant store interface the permission engine and registrar depend on.

A grant says that a principal holds a level (READ < WRITE) on one resource,
addressed by `(kind, id)`. SQLite implements it today (`SqliteGrantStore`); a
shared PostgreSQL store for replicated servers would implement the same protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol, runtime_checkable

__all__ = ["Grant", "GrantStore", "Level", "ReconcileResult"]


class Level(IntEnum):
    """Ordered access levels: a higher level includes the lower ones."""

    READ = 1
    WRITE = 2

    @classmethod
    def parse(cls, value: str) -> Level:
        """The level named by `value` ('read' or 'write', any case, surrounding spaces ignored).

        Raises ValueError naming the value when it is neither.
        """
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown level {value!r}; expected 'read' or 'write'") from None


@dataclass(frozen=True, slots=True)
class Grant:
    """One stored grant: `principal_id` holds `level` on the resource `(kind, id)`.

    Attributes:
        kind: The resource kind (a host's name for a type of resource).
        id: The resource id within its kind.
        principal_id: The lum.id principal holding the grant.
        level: The access level held.
        granted_at: When the grant was first written (Unix time, seconds).
        last_seen_at: When it was last written or confirmed (Unix time, seconds);
            `reconcile` keeps grants seen since the store was opened.
    """

    kind: str
    id: str
    principal_id: str
    level: Level
    granted_at: float
    last_seen_at: float


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """What one `GrantStore.reconcile` did.

    Attributes:
        kinds: The resource kinds swept (those present in the live list).
        live: How many live `(kind, id)` pairs the caller passed.
        removed: How many stale grants were deleted.
    """

    kinds: frozenset[str]
    live: int
    removed: int


@runtime_checkable
class GrantStore(Protocol):
    """Durable grants: what the permission engine reads and the registrar writes."""

    async def grant(self, kind: str, id: str, principal_id: str, level: Level) -> None:
        """Upsert a grant (never lowering an existing level) and refresh `last_seen_at`.

        Durable when the call returns.
        """
        ...

    async def revoke(self, kind: str, id: str, principal_id: str) -> bool:
        """Remove one grant; True when there was one."""
        ...

    async def delete_resource(self, kind: str, id: str) -> int:
        """Remove every grant on one resource; returns how many were removed."""
        ...

    async def level(self, kind: str, id: str, principal_id: str) -> Level | None:
        """The principal's level on one resource, or None."""
        ...

    async def ids(self, kind: str, principal_id: str, min_level: Level) -> frozenset[str]:
        """Ids of `kind` on which the principal holds at least `min_level`."""
        ...

    async def reconcile(self, live: Iterable[tuple[str, str]]) -> ReconcileResult:
        """Drop stale grants, atomically.

        Only kinds present in `live` are swept; grants written since the store was
        opened are kept; on any error the store is left unchanged.
        """
        ...

    def iter_grants(
        self,
        *,
        kind: str | None = None,
        id: str | None = None,
        principal_id: str | None = None,
    ) -> AsyncIterator[Grant]:
        """Every grant matching the filters, in (kind, id, principal_id) order."""
        ...

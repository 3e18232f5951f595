"""Resource -> parent links (a FlowMesh task's workflow): the interface and its SQLite table."""

from __future__ import annotations

import time
from typing import Final, Protocol, runtime_checkable

from lumid_core.db import Database

__all__ = ["ParentLinks", "SqliteParentLinks"]

_LINK: Final = (
    "INSERT INTO resource_parents (kind, id, parent_kind, parent_id, recorded_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, id, parent_kind) DO UPDATE SET "
    "parent_id = excluded.parent_id, recorded_at = excluded.recorded_at"
)
_PARENT: Final = (
    "SELECT parent_id FROM resource_parents WHERE kind = ? AND id = ? AND parent_kind = ?"
)


@runtime_checkable
class ParentLinks(Protocol):
    """One parent per (kind, id, parent kind), remembered at register time."""

    async def link(self, kind: str, id: str, parent_kind: str, parent_id: str) -> None:
        """Record (or move) the parent of one resource; durable when this returns."""
        ...

    async def parent(self, kind: str, id: str, parent_kind: str) -> str | None:
        """The recorded parent id, or None."""
        ...


class SqliteParentLinks:
    """The `resource_parents` table of a `Database` (writes group-committed)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"SqliteParentLinks({self._db!r})"

    async def link(self, kind: str, id: str, parent_kind: str, parent_id: str) -> None:
        """Record (or move) the parent of one resource; durable when this returns."""
        await self._db.write(_LINK, (kind, id, parent_kind, parent_id, time.time()))

    async def parent(self, kind: str, id: str, parent_kind: str) -> str | None:
        """The recorded parent id, or None (a point read in the event loop)."""
        row = self._db.read_one(_PARENT, (kind, id, parent_kind))
        return None if row is None else str(row[0])

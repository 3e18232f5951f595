"""Resource -> parent links on PostgreSQL (e.g. a FlowMesh task's workflow, for billing)."""

from __future__ import annotations

from typing import Final

from .database import NOW, PgTable

__all__ = ["PgParentLinks"]

_LINK: Final = (
    "INSERT INTO lumid_resource_parents (kind, id, parent_kind, parent_id, recorded_at) "  # noqa: S608 (constant SQL)
    f"VALUES ($1, $2, $3, $4, {NOW}) ON CONFLICT (kind, id, parent_kind) DO UPDATE SET "
    "parent_id = excluded.parent_id, recorded_at = excluded.recorded_at"
)
_PARENT: Final = (
    "SELECT parent_id FROM lumid_resource_parents WHERE kind = $1 AND id = $2 AND parent_kind = $3"
)


class PgParentLinks(PgTable):
    """The `lumid_resource_parents` table: one parent per (kind, id, parent kind)."""

    async def link(self, kind: str, id: str, parent_kind: str, parent_id: str) -> None:
        """Record (or move) the parent of one resource; committed when this returns."""
        await self._pool.execute(_LINK, kind, id, parent_kind, parent_id)

    async def parent(self, kind: str, id: str, parent_kind: str) -> str | None:
        """The recorded parent id, or None (a primary-key read)."""
        return await self._text(_PARENT, kind, id, parent_kind)

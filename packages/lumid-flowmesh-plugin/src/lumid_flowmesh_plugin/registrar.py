"""FlowMesh's registrar: the core registrar plus task -> workflow links for billing.

FlowMesh's usage row has no workflow id but Runmesh wants `workflowId`; FlowMesh
registers every TASK with metadata `{workflow_id}`, so that link is remembered in
the plugin database (table `resource_parents`) in the same group commit as the grant.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Final

from lumid_hooks import PrincipalContext, ResourceRef

from lumid_core import Database, Registrar
from lumid_core.unavailable import guarded

__all__ = ["FlowMeshRegistrar", "workflow_of"]

_LINK: Final = (
    "INSERT INTO resource_parents (kind, id, parent_kind, parent_id, recorded_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, id, parent_kind) DO UPDATE SET "
    "parent_id = excluded.parent_id, recorded_at = excluded.recorded_at"
)
_PARENT: Final = (
    "SELECT parent_id FROM resource_parents WHERE kind = ? AND id = ? AND parent_kind = ?"
)


def workflow_of(db: Database, task_id: str) -> str | None:
    """The workflow a task was registered under, or None (a point read)."""
    row = db.read_one(_PARENT, ("task", task_id, "workflow"))
    return None if row is None else str(row[0])


class FlowMeshRegistrar:
    """`lumid_hooks.ResourceRegistrar` wrapping `lumid_core.Registrar`."""

    def __init__(self, *, name: str, core: Registrar, db: Database) -> None:
        self.name = name
        self._core = core
        self._db = db

    def __repr__(self) -> str:
        return f"FlowMeshRegistrar(name={self.name!r})"

    async def register(
        self, principal: PrincipalContext, resource: ResourceRef, logger: logging.Logger
    ) -> None:
        link = None
        if resource.kind == "task" and resource.id is not None:
            workflow_id = resource.metadata.get("workflow_id")
            if isinstance(workflow_id, str | int) and str(workflow_id):
                # Queued now, so it lands in the same group commit as the grant.
                link = self._db.write(
                    _LINK, ("task", resource.id, "workflow", str(workflow_id), time.time())
                )
        try:
            await self._core.register(principal, resource, logger)
        finally:
            if link is not None:
                await guarded(link, "register")

    async def deregister(
        self, principal: PrincipalContext, resource: ResourceRef, logger: logging.Logger
    ) -> None:
        await self._core.deregister(principal, resource, logger)

    async def reconcile(self, resources: Collection[ResourceRef], logger: logging.Logger) -> None:
        await self._core.reconcile(resources, logger)

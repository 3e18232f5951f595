"""FlowMesh's registrar: the core registrar plus task -> workflow links for billing.

FlowMesh's usage row has no workflow id but Runmesh wants `workflowId`; FlowMesh
registers every TASK with metadata `{workflow_id}`, so that link is remembered in
the store's parent links (`lumid_core.store.parents`), written alongside the grant
(on SQLite in the same group commit).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from lumid_hooks import PrincipalContext, ResourceRef

from lumid_core import Registrar
from lumid_core.store.parents import ParentLinks
from lumid_core.unavailable import guarded

__all__ = ["FlowMeshRegistrar", "workflow_of"]


async def workflow_of(parents: ParentLinks, task_id: str) -> str | None:
    """The workflow a task was registered under, or None (a point read)."""
    return await parents.parent("task", task_id, "workflow")


class FlowMeshRegistrar:
    """`lumid_hooks.ResourceRegistrar` wrapping `lumid_core.Registrar`."""

    def __init__(self, *, name: str, core: Registrar, parents: ParentLinks) -> None:
        self.name = name
        self._core = core
        self._parents = parents

    def __repr__(self) -> str:
        return f"FlowMeshRegistrar(name={self.name!r})"

    async def register(
        self, principal: PrincipalContext, resource: ResourceRef, logger: logging.Logger
    ) -> None:
        """Register `resource` with the core registrar; a task also records its workflow.

        The task -> workflow link is what billing reads to put the workflow id on the
        task's usage; the core's errors (422 for a long id, 503) pass through unchanged.
        """
        link = None
        if resource.kind == "task" and resource.id is not None:
            workflow_id = resource.metadata.get("workflow_id")
            if isinstance(workflow_id, str | int) and str(workflow_id):
                # Started now, so on SQLite it lands in the same group commit as the grant.
                link = asyncio.ensure_future(
                    self._parents.link("task", resource.id, "workflow", str(workflow_id))
                )
        try:
            await self._core.register(principal, resource, logger)
        finally:
            if link is not None:
                await guarded(link, "register")

    async def deregister(
        self, principal: PrincipalContext, resource: ResourceRef, logger: logging.Logger
    ) -> None:
        """Deregister `resource` as the core registrar does (parent links are kept)."""
        await self._core.deregister(principal, resource, logger)

    async def reconcile(self, resources: Collection[ResourceRef], logger: logging.Logger) -> None:
        """Reconcile the grants against `resources` as the core registrar does."""
        await self._core.reconcile(resources, logger)

"""The registrar: resource lifecycle events -> grants.

A store that cannot be reached makes `register` / `deregister` raise
`HTTPException(503)` with `Retry-After` (`lumid_core.unavailable`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from fastapi import HTTPException
from lumid_hooks import PrincipalContext, ResourceRef

from .limits import MAX_ID_BYTES
from .permissions import id_too_long
from .store import GrantStore, Level
from .unavailable import guarded

__all__ = ["Registrar"]


class Registrar:
    """`lumid_hooks.ResourceRegistrar`: creators get WRITE; reconcile drops stale grants."""

    def __init__(self, *, name: str, store: GrantStore) -> None:
        self.name = name
        self._store = store

    def __repr__(self) -> str:
        return f"Registrar(name={self.name!r})"

    async def register(
        self, principal: PrincipalContext, resource: ResourceRef, logger: logging.Logger
    ) -> None:
        """Give the creator `principal` WRITE on `resource`, durably before returning.

        A resource without an id is ignored (logged). Raises `HTTPException` 422 when
        the id is longer than `MAX_ID_BYTES` (UTF-8), and 503 with `Retry-After`
        when the store cannot be reached.
        """
        if resource.id is None:
            logger.info("%s: register of a %s without id ignored", self.name, resource.kind)
            return
        if len(resource.id) > MAX_ID_BYTES // 4 and id_too_long(resource.id):
            logger.warning(
                "%s: register of a %s refused: id longer than %d bytes",
                self.name,
                resource.kind,
                MAX_ID_BYTES,
            )
            raise HTTPException(
                status_code=422,
                detail=f"{resource.kind} id longer than {MAX_ID_BYTES} bytes: not registered",
            )
        await guarded(
            self._store.grant(resource.kind, resource.id, principal.principal_id, Level.WRITE),
            "register",
        )

    async def deregister(
        self, principal: PrincipalContext, resource: ResourceRef, logger: logging.Logger
    ) -> None:
        """Drop every grant on `resource`, which is gone (a resource without an id is ignored).

        Raises `HTTPException` 503 with `Retry-After` when the store cannot be reached.
        """
        if resource.id is None:
            logger.info("%s: deregister of a %s without id ignored", self.name, resource.kind)
            return
        removed = await guarded(
            self._store.delete_resource(resource.kind, resource.id), "deregister"
        )
        logger.debug(
            "%s: %s %s gone, %d grants dropped", self.name, resource.kind, resource.id, removed
        )

    async def reconcile(self, resources: Collection[ResourceRef], logger: logging.Logger) -> None:
        """Sweep the grants of resources the host no longer lists (`GrantStore.reconcile`).

        `resources` is the host's full list of live resources; only the kinds it
        contains are swept, and the result is logged at INFO.
        """
        result = await self._store.reconcile((r.kind, r.id) for r in resources if r.id is not None)
        if result.kinds:
            logger.info(
                "%s: reconcile swept %s: %d live, %d stale grants removed",
                self.name,
                ", ".join(sorted(result.kinds)),
                result.live,
                result.removed,
            )
        else:
            logger.info("%s: reconcile received no resources; nothing swept", self.name)

"""A fail-closed stand-in for the hooks of a plugin object the host never opened.

A host that loads a plugin's install object but never enters (or awaits) it gets
this in place of identity, permissions and the registrar: every token, check and
registration is refused with a 503 that says why, listings are empty and a
reconcile is logged and ignored, so such a process cannot serve a request
without authorization.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import NoReturn

from fastapi import HTTPException
from lumid_hooks import PrincipalContext, ResourceRef

__all__ = ["NotEntered"]


class NotEntered:
    """Fail-closed identity provider, permission checker and registrar of `plugin`."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.name = f"{plugin}.not-entered"

    def __repr__(self) -> str:
        return "NotEntered()"

    def error(self) -> HTTPException:
        """The 503 every refused call raises (it names the plugin, never a secret)."""
        return HTTPException(
            status_code=503,
            detail=(
                f"{self.plugin} was loaded without being entered or awaited, so lum.id "
                "identity and authorization are off in this process; the server must enter "
                "install()"
            ),
        )

    async def resolve(self, raw_token: str, logger: logging.Logger) -> PrincipalContext | None:
        """None for no token (anonymous, as the host's own gate decides); raises the 503."""
        if not raw_token:
            return None
        raise self.error()

    async def refuse(self, *_args: object, **_kwargs: object) -> NoReturn:
        """Raise the 503, whatever the call: `require`, `register` and `deregister`."""
        raise self.error()

    require = register = deregister = refuse

    async def accessible_ids(self, *_args: object, **_kwargs: object) -> frozenset[str]:
        """No ids: nothing may be listed."""
        return frozenset()

    async def reconcile(self, resources: Collection[ResourceRef], logger: logging.Logger) -> None:
        """Log that the reconcile is ignored (nothing is opened to reconcile)."""
        logger.error("%s: reconcile ignored: %s", self.plugin, self.error().detail)

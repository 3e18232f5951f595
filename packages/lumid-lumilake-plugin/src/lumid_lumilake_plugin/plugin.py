"""`install()`: what Lumilake's loader calls (`LUMILAKE_PLUGINS=lumid_lumilake_plugin`).

What it returns is one object for each shape Lumilake's loader accepts:

- entered as an async context manager (Lumilake's server: entered on the
  lifespan's exit stack, exited at shutdown): opens the core runtime (grant
  store, pooled client, identity), fetches the optimizer catalog and yields a
  `lumilake_hook.BaseBindings` with every hook;
- awaited (a loader with no exit stack): the same bindings; what it opened stays
  open until `aclose()` or the end of the process;
- used as plain bindings (Lumilake's job subprocess calls `install()` again
  synchronously): only the optimizer works, its catalog fetched on first lookup.
  Identity, permissions and the registrar are then fail-closed stand-ins, so a
  loader that never enters the object cannot serve requests without
  authorization.

Creating the object opens nothing, so `install()` may run any number of times.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final

from lumid_hooks import (
    IdentityProvider,
    PermissionChecker,
    ResourceRegistrar,
    SubmissionGuard,
    UsageSink,
)
from lumilake_hook import BaseBindings, OptimizerProvider

from lumid_core import load_settings
from lumid_core.not_entered import NotEntered
from lumid_core.runtime import open_runtime

from .optimizer import CATALOG_PATH, CatalogError, RemoteOptimizerProvider, fetch_optimizer_catalog
from .permissions import LumilakePermissions
from .settings import LumilakeSettings

__all__ = ["PLUGIN", "LumilakeInstall", "describe", "ignored_db_warning", "install", "logger"]

PLUGIN: Final = "lumid_lumilake_plugin"
logger = logging.getLogger(PLUGIN)


class LumilakeInstall:
    """The result of `install()` (see the module docstring)."""

    def __init__(self, settings: LumilakeSettings, logger: logging.Logger) -> None:
        self.settings = settings
        self._logger = logger
        self._stack: AsyncExitStack | None = None
        self._bindings: BaseBindings | None = None
        self._not_entered = NotEntered(PLUGIN)
        self._lazy_optimizer: RemoteOptimizerProvider | None = None

    def __repr__(self) -> str:
        state = "open" if self._stack is not None else "not entered"
        return f"LumilakeInstall({state})"

    # -- async context manager and awaitable -----------------------------------------

    async def __aenter__(self) -> BaseBindings:
        if self._stack is not None:
            raise RuntimeError(f"{PLUGIN}: install() result entered twice; call install() again")
        stack = AsyncExitStack()
        try:
            bindings = await self._open(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self._bindings = bindings
        return bindings

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __await__(self) -> Generator[Any, None, BaseBindings]:
        return self.__aenter__().__await__()

    async def aclose(self) -> None:
        """Close what entering or awaiting opened (idempotent)."""
        stack, self._stack, self._bindings = self._stack, None, None
        if stack is not None:
            await stack.aclose()
            self._logger.info("%s: closed", PLUGIN)

    async def _open(self, stack: AsyncExitStack) -> BaseBindings:
        settings = self.settings
        logger = self._logger
        runtime = await stack.enter_async_context(
            open_runtime(settings, plugin=PLUGIN, logger=logger)
        )
        checker = LumilakePermissions(name=f"{PLUGIN}.permissions", store=runtime.store)
        providers: tuple[OptimizerProvider, ...] = ()
        optimizer = "off (LUMILAKE_REMOTE_OPTIMIZER_URL is not set)"
        base = settings.lumilake_remote_optimizer_url
        if base is not None:
            try:
                names = await fetch_optimizer_catalog(settings, runtime.http)
            except CatalogError as exc:
                logger.error(
                    "%s: remote optimizer at %s NOT loaded: catalog %s failed: %s; "
                    "identity and authorization are on; restart once it is reachable",
                    PLUGIN,
                    base,
                    CATALOG_PATH,
                    exc,
                )
                optimizer = f"FAILED ({exc})"
            else:
                provider = RemoteOptimizerProvider(
                    name=f"{PLUGIN}.optimizer", settings=settings, catalog=names, logger=logger
                )
                providers = (provider,)
                optimizer = f"on ({base}: {', '.join(names) or 'no types advertised'})"
        logger.info(
            "%s: %s", PLUGIN, describe(settings, database=runtime.db.path, optimizer=optimizer)
        )
        if (ignored := settings.ignored_legacy_db_path) is not None:
            logger.warning("%s: %s", PLUGIN, ignored_db_warning(ignored, runtime.db.path))
        return BaseBindings(
            identity_providers=(runtime.identity,),
            permission_checkers=(checker,),
            resource_registrars=(runtime.registrar,),
            optimizer_providers=providers,
        )

    # -- plain bindings (an un-entered object) ----------------------------------------

    @property
    def identity_providers(self) -> Sequence[IdentityProvider]:
        """The fail-closed identity stand-in (tokens get a 503)."""
        return (self._not_entered,)

    @property
    def submission_guards(self) -> Sequence[SubmissionGuard]:
        """None: the plugin guards no submission."""
        return ()

    @property
    def usage_sinks(self) -> Sequence[UsageSink[Any]]:
        """None: the plugin records no usage."""
        return ()

    @property
    def permission_checkers(self) -> Sequence[PermissionChecker]:
        """The fail-closed checker stand-in (every check gets a 503)."""
        return (self._not_entered,)

    @property
    def resource_registrars(self) -> Sequence[ResourceRegistrar]:
        """The fail-closed registrar stand-in (every registration gets a 503)."""
        return (self._not_entered,)

    @property
    def optimizer_providers(self) -> Sequence[OptimizerProvider]:
        """The remote optimizer, its catalog fetched on first lookup; none if off."""
        if self.settings.lumilake_remote_optimizer_url is None:
            return ()
        if self._lazy_optimizer is None:
            self._lazy_optimizer = RemoteOptimizerProvider(
                name=f"{PLUGIN}.optimizer",
                settings=self.settings,
                catalog=None,
                logger=self._logger,
            )
        return (self._lazy_optimizer,)


def install() -> LumilakeInstall:
    """Validate the settings and return the (not yet opened) plugin.

    Raises `lumid_core.SettingsError` naming the variable at fault. Opens nothing:
    Lumilake enters the result (or awaits it, or reads it as plain bindings).
    """
    return LumilakeInstall(load_settings(LumilakeSettings), logger)


def ignored_db_warning(ignored: Path, used: Path | str) -> str:
    """What to tell an operator whose 0.2.x Lumilake grant file is not the one in use."""
    return (
        f"LUMID_LUMILAKE_ACL_DB_PATH={str(ignored)!r} is ignored because LUMID_ACL_DB_PATH "
        f"is set ({str(used)!r}): grants lumid-plugins 0.2.x kept in that file are neither "
        "used nor migrated; unset LUMID_ACL_DB_PATH or point it at that file "
        "(docs/upgrading.md)"
    )


def describe(settings: LumilakeSettings, *, database: object, optimizer: str) -> str:
    """The install log line: which hooks are on, where grants live (never a secret).

    `database` is the grant store in use (a path, or a redacted URL); `optimizer` is
    what became of the remote optimizer (on, off or FAILED, with why).
    """
    return (
        f"installed: identity on (lum.id at {settings.lum_id_base_url}), permissions on, "
        f"registrar on (grants in {database}): always on; remote optimizer {optimizer}"
    )

"""lum.id for Lumilake: identity, ownership-based authorization, a remote optimizer.

Operators set `LUMILAKE_PLUGINS=lumid_lumilake_plugin`; Lumilake calls `install()`
and enters the result on its lifespan's exit stack (docs/lumilake.md).
"""

from __future__ import annotations

import logging
from importlib.metadata import version as _dist_version

from lumid_core import load_settings

from .optimizer import CatalogError, RemoteOptimizerProvider, fetch_optimizer_catalog
from .permissions import LumilakePermissions
from .plugin import PLUGIN, LumilakeInstall
from .policy import LUMILAKE_POLICY, build_policy
from .settings import LumilakeSettings

__version__: str = _dist_version("lumid-lumilake-plugin")
"""The installed version, from the distribution metadata (pyproject.toml is its one source)."""

__all__ = [
    "LUMILAKE_POLICY",
    "PLUGIN",
    "CatalogError",
    "LumilakeInstall",
    "LumilakePermissions",
    "LumilakeSettings",
    "RemoteOptimizerProvider",
    "__version__",
    "build_policy",
    "fetch_optimizer_catalog",
    "install",
]

log = logging.getLogger(PLUGIN)


def install() -> LumilakeInstall:
    """Validate the settings and return the (not yet opened) plugin.

    Raises `lumid_core.SettingsError` naming the variable at fault. Opens nothing:
    Lumilake enters the result (or awaits it, or reads it as plain bindings).
    """
    return LumilakeInstall(load_settings(LumilakeSettings), log)

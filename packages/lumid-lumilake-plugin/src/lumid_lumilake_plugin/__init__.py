"""lum.id for Lumilake: identity, ownership-based authorization, a remote optimizer.

Lumilake loads it with `LUMILAKE_PLUGINS=lumid_lumilake_plugin` and calls
`install()`, which returns a `LumilakeInstall` that Lumilake enters on its
lifespan's exit stack (docs/lumilake.md).
"""

from importlib.metadata import version as _dist_version

from .optimizer import CatalogError, RemoteOptimizerProvider, fetch_optimizer_catalog
from .permissions import LumilakePermissions
from .plugin import PLUGIN, LumilakeInstall, install
from .policy import LUMILAKE_POLICY
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
    "fetch_optimizer_catalog",
    "install",
]

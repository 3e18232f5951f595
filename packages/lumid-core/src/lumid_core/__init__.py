"""lumid-core: the host-neutral core shared by the lum.id host plugins.

It never imports a host's hook package (`flowmesh_hook`, `lumilake_hook`).
"""

from importlib.metadata import version as _dist_version

from .db import Database, DatabaseError
from .directory import MemoryPrincipalDirectory, PrincipalDirectory, SqlitePrincipalDirectory
from .identity import LumIdIdentityProvider, make_http_client
from .permissions import PermissionEngine, Policy
from .registrar import Registrar
from .runtime import CoreRuntime, open_runtime
from .settings import LumidSettings, SettingsError, load_settings
from .store import Grant, GrantStore, Level, ReconcileResult, SqliteGrantStore

__version__: str = _dist_version("lumid-core")
"""The installed version, from the distribution metadata (pyproject.toml is its one source)."""

__all__ = [
    "CoreRuntime",
    "Database",
    "DatabaseError",
    "Grant",
    "GrantStore",
    "Level",
    "LumIdIdentityProvider",
    "LumidSettings",
    "MemoryPrincipalDirectory",
    "PermissionEngine",
    "Policy",
    "PrincipalDirectory",
    "ReconcileResult",
    "Registrar",
    "SettingsError",
    "SqliteGrantStore",
    "SqlitePrincipalDirectory",
    "__version__",
    "load_settings",
    "make_http_client",
    "open_runtime",
]

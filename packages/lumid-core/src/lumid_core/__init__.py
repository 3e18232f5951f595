"""lumid-core: the host-neutral core shared by the lum.id host plugins.

It never imports a host's hook package (`flowmesh_hook`, `lumilake_hook`). The
names below are loaded on first use (module `__getattr__`), so `import
lumid_core.cli` starts without pydantic, httpx or fastapi.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__: str
"""The installed version, from the distribution metadata (pyproject.toml is its one
source); read on first use, as importing importlib.metadata slows every `lumid` start."""

_EXPORTS: dict[str, str] = {
    "ConfigError": "errors",
    "CoreRuntime": "runtime",
    "Database": "db",
    "DatabaseError": "db",
    "Grant": "store",
    "GrantStore": "store",
    "Level": "store",
    "LumIdIdentityProvider": "identity",
    "LumidError": "errors",
    "LumidSettings": "settings",
    "MemoryPrincipalDirectory": "directory",
    "PermissionEngine": "permissions",
    "Policy": "permissions",
    "PrincipalDirectory": "directory",
    "Problem": "errors",
    "ReconcileResult": "store",
    "Registrar": "registrar",
    "SettingsError": "settings",
    "SqliteGrantStore": "store",
    "SqlitePrincipalDirectory": "directory",
    "StoreError": "errors",
    "UpstreamError": "errors",
    "load_settings": "settings",
    "make_http_client": "http",
    "open_runtime": "runtime",
}

__all__ = [
    "ConfigError",
    "CoreRuntime",
    "Database",
    "DatabaseError",
    "Grant",
    "GrantStore",
    "Level",
    "LumIdIdentityProvider",
    "LumidError",
    "LumidSettings",
    "MemoryPrincipalDirectory",
    "PermissionEngine",
    "Policy",
    "PrincipalDirectory",
    "Problem",
    "ReconcileResult",
    "Registrar",
    "SettingsError",
    "SqliteGrantStore",
    "SqlitePrincipalDirectory",
    "StoreError",
    "UpstreamError",
    "__version__",
    "load_settings",
    "make_http_client",
    "open_runtime",
]

if TYPE_CHECKING:
    from .db import Database, DatabaseError
    from .directory import MemoryPrincipalDirectory, PrincipalDirectory, SqlitePrincipalDirectory
    from .errors import ConfigError, LumidError, Problem, StoreError, UpstreamError
    from .http import make_http_client
    from .identity import LumIdIdentityProvider
    from .permissions import PermissionEngine, Policy
    from .registrar import Registrar
    from .runtime import CoreRuntime, open_runtime
    from .settings import LumidSettings, SettingsError, load_settings
    from .store import Grant, GrantStore, Level, ReconcileResult, SqliteGrantStore


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        globals()["__version__"] = value = version("lumid-core")
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lumid_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

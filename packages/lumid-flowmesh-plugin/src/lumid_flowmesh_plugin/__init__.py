"""lum.id for FlowMesh: identity, authorization, durable billing and supplier attribution.

Identity through lum.id, ownership-based authorization, durable Runmesh billing
with a balance guard, and supplier attribution.

FlowMesh loads it with `FLOWMESH_PLUGINS=lumid_flowmesh_plugin` and calls
`install()`, an async context manager yielding `flowmesh_hook.BaseBindings`.
"""

from importlib.metadata import version as _dist_version

from .billing import BILLING_SINK, RunmeshBilling, RunmeshUsageSink
from .guard import BalanceGuard
from .plugin import PLUGIN, FlowMeshBindings, install
from .policy import FLOWMESH_POLICY
from .registrar import FlowMeshRegistrar
from .runmesh import ProbeResult, RunmeshClient
from .settings import FlowMeshSettings
from .supplier import NamespaceSupplierResolver

__version__: str = _dist_version("lumid-flowmesh-plugin")
"""The installed version, from the distribution metadata (pyproject.toml is its one source)."""

__all__ = [
    "BILLING_SINK",
    "FLOWMESH_POLICY",
    "PLUGIN",
    "BalanceGuard",
    "FlowMeshBindings",
    "FlowMeshRegistrar",
    "FlowMeshSettings",
    "NamespaceSupplierResolver",
    "ProbeResult",
    "RunmeshBilling",
    "RunmeshClient",
    "RunmeshUsageSink",
    "__version__",
    "install",
]

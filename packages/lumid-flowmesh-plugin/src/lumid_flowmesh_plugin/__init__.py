"""lum.id for FlowMesh: identity, ownership-based authorization, durable Runmesh
billing and supplier attribution.

FlowMesh loads it with `FLOWMESH_PLUGINS=lumid_flowmesh_plugin` and calls
`install()`, an async context manager yielding `flowmesh_hook.BaseBindings`.
"""

from .billing import BILLING_SINK, RunmeshBilling, RunmeshUsageSink
from .guard import BalanceGuard
from .plugin import PLUGIN, FlowMeshBindings, install
from .policy import FLOWMESH_POLICY
from .registrar import FlowMeshRegistrar
from .runmesh import ProbeResult, RunmeshClient
from .settings import FlowMeshSettings
from .supplier import NamespaceSupplierResolver

__version__ = "0.1.0"

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

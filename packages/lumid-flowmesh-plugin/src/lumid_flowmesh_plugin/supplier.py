"""Supplier attribution: a worker's namespace names the supplier of its hardware."""

from __future__ import annotations

from flowmesh_hook import WorkerView

__all__ = ["NamespaceSupplierResolver"]


class NamespaceSupplierResolver:
    """`flowmesh_hook.SupplierResolver`: `worker.namespace`, or None when empty.

    Runs synchronously on FlowMesh's dispatcher thread, unguarded: it does no I/O
    and never raises, whatever object it is handed.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"NamespaceSupplierResolver(name={self.name!r})"

    def resolve(self, worker: WorkerView) -> str | None:
        """The worker's namespace as its supplier id, or None; never raises or blocks."""
        try:
            namespace = getattr(worker, "namespace", None)
            if not isinstance(namespace, str):
                return None
            namespace = namespace.strip()
            return namespace or None
        except Exception:  # a broken view must never reach the dispatcher
            return None

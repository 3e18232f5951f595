"""The supplier resolver: worker namespace or None; never raises, never blocks."""

from __future__ import annotations

import types

import pytest

from lumid_flowmesh_plugin import NamespaceSupplierResolver


class Exploding:
    @property
    def namespace(self) -> str:
        raise RuntimeError("broken view")


def worker(namespace: object) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        id="k1", node_id="n1", namespace=namespace, cluster="c", tags=[], env={}
    )


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        (worker("acme-gpu"), "acme-gpu"),
        (worker("  acme  "), "acme"),
        (worker(""), None),
        (worker("   "), None),
        (worker(None), None),
        (worker(42), None),
        (types.SimpleNamespace(id="k1"), None),
        (Exploding(), None),
        (None, None),
    ],
)
def test_resolve(view: object, expected: str | None) -> None:
    resolver = NamespaceSupplierResolver("lumid_flowmesh_plugin.supplier")
    assert resolver.resolve(view) == expected  # type: ignore[arg-type]

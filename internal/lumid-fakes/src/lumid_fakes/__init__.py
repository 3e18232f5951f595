"""Loopback emulators for tests, benchmarks and `make demo` (never published)."""

from .lumid import FakeLumId, new_pat
from .optimizer import FakeOptimizer
from .postgres import PgCluster, find_pg_bin
from .runmesh import FakeRunmesh
from .server import FakeServer, Recorded, Reply
from .service import Service

__all__ = [
    "FakeLumId",
    "FakeOptimizer",
    "FakeRunmesh",
    "FakeServer",
    "PgCluster",
    "Recorded",
    "Reply",
    "Service",
    "find_pg_bin",
    "new_pat",
]

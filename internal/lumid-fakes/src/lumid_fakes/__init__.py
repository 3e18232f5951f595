"""Loopback emulators for tests, benchmarks and `make demo` (never published)."""

from .lumid import FakeLumId, new_pat
from .optimizer import FakeOptimizer
from .runmesh import FakeRunmesh
from .server import FakeServer, Recorded, Reply

__all__ = [
    "FakeLumId",
    "FakeOptimizer",
    "FakeRunmesh",
    "FakeServer",
    "Recorded",
    "Reply",
    "new_pat",
]

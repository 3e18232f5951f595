"""Loopback emulators for tests, benchmarks and `make demo` (never published)."""

from .lumid import FakeLumId, new_pat
from .runmesh import FakeRunmesh
from .server import FakeServer, Recorded, Reply

__all__ = ["FakeLumId", "FakeRunmesh", "FakeServer", "Recorded", "Reply", "new_pat"]

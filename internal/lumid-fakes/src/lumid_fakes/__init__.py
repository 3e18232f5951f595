"""Loopback emulators for tests, benchmarks and `make demo` (never published)."""

from .lumid import FakeLumId, new_pat
from .server import FakeServer, Recorded, Reply

__all__ = ["FakeLumId", "FakeServer", "Recorded", "Reply", "new_pat"]

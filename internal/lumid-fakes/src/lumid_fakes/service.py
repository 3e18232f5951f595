"""`Service`: what every loopback stand-in shares, a start, a stop and a `with` block."""

from __future__ import annotations

from typing import Self

__all__ = ["Service"]


class Service:
    """A thing a test starts and must stop: `with Thing(...) as t:` starts and stops it.

    Subclasses implement `start` (returning self, ready to use) and `stop` (safe to
    call twice, and after a failed start).
    """

    def start(self) -> Self:
        """Start it; returns self once it is ready."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop it and release what it holds."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

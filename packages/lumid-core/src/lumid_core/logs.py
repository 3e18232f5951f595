"""Log helpers: `RateLimitedLog`, at most one line per topic per interval."""

from __future__ import annotations

import logging
import time

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """At most one log line per topic per `interval` seconds, counting the rest.

    The next line of a topic that had lines suppressed says how many.
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, topic: str, msg: str, *args: object) -> bool:
        """Log `msg % args` at `level` unless `topic` logged within `interval`; True if logged."""
        now = time.monotonic()
        last = self._last.get(topic)
        if last is not None and now - last < self.interval:
            self._suppressed[topic] = self._suppressed.get(topic, 0) + 1
            return False
        self._last[topic] = now
        extra = self._suppressed.pop(topic, 0)
        if extra:
            msg += " (%d similar messages suppressed)"
            args = (*args, extra)
        self.logger.log(level, msg, *args)
        return True

    def warning(self, topic: str, msg: str, *args: object) -> bool:
        """`log(logging.WARNING, ...)`."""
        return self.log(logging.WARNING, topic, msg, *args)

    def error(self, topic: str, msg: str, *args: object) -> bool:
        """`log(logging.ERROR, ...)`."""
        return self.log(logging.ERROR, topic, msg, *args)

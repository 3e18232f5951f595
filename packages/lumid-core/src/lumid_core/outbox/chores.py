"""`Chores`: the worker's periodic side jobs: status line, held-row re-check, pruning."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from lumid_core.logs import RateLimitedLog

from .settings import WorkerSettings
from .store import OutboxStore

__all__ = ["Chores"]


class Chores:
    """Runs each side job when it is due; none of them ever raises."""

    def __init__(
        self,
        outbox: OutboxStore,
        *,
        name: str,
        logger: logging.Logger,
        warn: RateLimitedLog,
        settings: WorkerSettings,
        recheck: Callable[[], Awaitable[int]] | None,
    ) -> None:
        self.outbox = outbox
        self.name = name
        self.logger = logger
        self.warn = warn
        self.settings = settings
        self._recheck = recheck
        mono = time.monotonic()
        self._next_status = mono + settings.status_interval
        self._next_prune = mono + 60.0
        self.next_recheck: float | None = None if recheck is None else 0.0
        """Monotonic time of the next held-row re-check (None: no re-check)."""

    async def run_due(self, mono: float) -> bool:
        """Run the jobs due at `mono`; True when held rows were released."""
        s = self.settings
        released = False
        if mono >= self._next_status:
            self._next_status = mono + s.status_interval
            await self._log_status()
        if self.next_recheck is not None and mono >= self.next_recheck:
            self.next_recheck = mono + s.recheck_interval
            released = await self._run_recheck()
        if mono >= self._next_prune:
            self._next_prune = mono + s.prune_interval
            await self._prune()
        return released

    async def _run_recheck(self) -> bool:
        assert self._recheck is not None
        try:
            released = await self._recheck()
        except Exception as exc:
            self.warn.warning("recheck", "%s: re-checking held rows failed: %s", self.name, exc)
            return False
        if released:
            self.logger.info("%s: %d held rows released for delivery", self.name, released)
        return bool(released)

    async def _prune(self) -> None:
        try:
            await self.outbox.prune_delivered(self.settings.retention_seconds)
        except Exception as exc:
            self.warn.warning("db", "%s: cannot prune delivered rows: %s", self.name, exc)

    async def _log_status(self) -> None:
        try:
            s = await self.outbox.stats()
        except Exception as exc:
            self.warn.warning("db", "%s: cannot read outbox stats: %s", self.name, exc)
            return
        if s.pending or s.held or s.dead:
            age = (
                "-"
                if s.oldest_pending_age_seconds is None
                else f"{s.oldest_pending_age_seconds:.0f}s"
            )
            self.logger.info(
                "%s outbox: %d pending (oldest %s), %d held, %d dead, %d delivered",
                self.name,
                s.pending,
                age,
                s.held,
                s.dead,
                s.delivered,
            )

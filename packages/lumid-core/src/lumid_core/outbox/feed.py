"""`Feed`: the worker's queue of claimed rows and when to read the store for more."""

from __future__ import annotations

import contextlib
import time
from collections import deque

from lumid_core.logs import RateLimitedLog

from .model import OutboxEntry
from .store import OutboxStore

__all__ = ["Feed"]


class Feed:
    """Rows claimed by one worker (queued or out for delivery) and its reads of the store.

    A key stays in `claimed` from the moment it is queued until its outcome is
    recorded (`release`), so a read of the store never queues a row twice.
    """

    def __init__(
        self,
        outbox: OutboxStore,
        *,
        name: str,
        warn: RateLimitedLog,
        batch: int,
        concurrency: int,
        idle_poll: float,
    ) -> None:
        self.outbox = outbox
        self.name = name
        self.warn = warn
        self.batch = batch
        self.concurrency = concurrency
        self.idle_poll = idle_poll
        self.queue: deque[OutboxEntry] = deque()
        self.claimed: set[str] = set()
        self.dirty = True
        """The store may hold due rows this worker has not queued."""
        self.next_fill = 0.0
        """Monotonic time of the next periodic read of the store."""
        self.retry_due: float | None = None
        """Epoch time a row this worker retried (or the store's next row) is due."""
        self._finished_during_fill: set[str] | None = None

    def due_at(self, at: float) -> None:
        """A row falls due at epoch time `at`: wake for the earliest such time."""
        if self.retry_due is None or at < self.retry_due:
            self.retry_due = at

    def fill_needed(self, now: float, mono: float) -> bool:
        """True when the queue has room and a read of the store is due."""
        if len(self.queue) >= self.concurrency:
            return False
        if self.dirty or mono >= self.next_fill:
            return True
        return self.retry_due is not None and now >= self.retry_due

    async def fill(self, now: float) -> None:
        """Read the store's due rows into the queue (a failed read is logged, retried)."""
        self.dirty = False
        self.next_fill = time.monotonic() + self.idle_poll
        if self.retry_due is not None and now >= self.retry_due:
            self.retry_due = None
        # A row whose outcome is recorded while this read (or the next_due_at read
        # after it: an async store suspends there too) runs may still show as pending
        # in the read's snapshot: remember such keys and skip them.
        finished: set[str] = set()
        self._finished_during_fill = finished
        limit = self.batch + len(self.claimed)
        try:
            try:
                rows = await self.outbox.due(now=now, limit=limit, skip=0)
            except Exception as exc:
                self.dirty = True
                self.warn.warning("db", "%s: cannot read the outbox: %s", self.name, exc)
                return
            if len(rows) >= limit:
                self.dirty = True  # more may be due than one read returns
            else:
                # Rows due later (retried by an earlier run or another process): the
                # loop wakes for the earliest instead of waiting for the next read.
                with contextlib.suppress(Exception):
                    nxt = await self.outbox.next_due_at()
                    if nxt is not None and nxt > now:
                        self.due_at(nxt)
            for row in rows:
                if row.key not in self.claimed and row.key not in finished:
                    self.claimed.add(row.key)
                    self.queue.append(row)
        finally:
            self._finished_during_fill = None

    def release(self, key: str) -> None:
        """`key` is no longer this worker's (its outcome is recorded, or it was cancelled)."""
        self.claimed.discard(key)
        if self._finished_during_fill is not None:
            self._finished_during_fill.add(key)

    def clear(self) -> None:
        """Forget every queued and claimed row (the worker stopped)."""
        self.queue.clear()
        self.claimed.clear()

"""`Spool`: rows the store could not take yet, kept in memory and retried until durable.

When the store cannot be written (another process holds SQLite's write lock, the
disk is full), a sink hands its rows to the spool instead of dropping them. The
spool is bounded (`capacity` rows): a row that does not fit is refused and the
caller logs it. One task retries writing the spooled rows, oldest first, every
`retry_interval` seconds, until they are durable or the process ends; `close`
tries for a bounded time and then logs every row still in memory as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from lumid_core.logs import RateLimitedLog

from .model import NewEntry
from .store import OutboxStore

__all__ = ["Spool"]

_CHUNK = 500


class Spool:
    """A bounded in-memory queue in front of an `OutboxStore`'s `add`."""

    def __init__(
        self,
        outbox: OutboxStore,
        *,
        logger: logging.Logger,
        name: str,
        capacity: int,
        describe: Callable[[NewEntry], str],
        on_durable: Callable[[], None] = lambda: None,
        retry_interval: float = 1.0,
        warn_interval: float = 60.0,
        where: str = "",
    ) -> None:
        if capacity < 1:
            raise ValueError("a spool needs a capacity of at least 1 row")
        self._outbox = outbox
        self._logger = logger
        self._warn = RateLimitedLog(logger, warn_interval)
        self.name = name
        self.capacity = capacity
        self._describe = describe
        self._on_durable = on_durable
        self._retry = retry_interval
        self._where = where
        self._rows: deque[NewEntry] = deque()
        self._task: asyncio.Task[None] | None = None
        self._since = 0.0

    def __len__(self) -> int:
        return len(self._rows)

    def put(self, entries: Sequence[NewEntry], error: object = None) -> list[NewEntry]:
        """Keep `entries` until they are durable; returns those beyond the capacity."""
        room = self.capacity - len(self._rows)
        kept, refused = list(entries[: max(0, room)]), list(entries[max(0, room) :])
        if kept:
            if not self._rows:
                self._since = time.monotonic()
            self._rows.extend(kept)
            self._warn.warning(
                "spooled",
                "%s: the database cannot be written%s (%s): %d usage rows wait in memory "
                "and are retried every %gs; they are lost if the process ends first",
                self.name,
                self._where,
                error if error is not None else "earlier rows still wait",
                len(self._rows),
                self._retry,
            )
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=f"{self.name}-spool")
        return refused

    async def _drain(self) -> None:
        while self._rows:
            chunk = [self._rows[i] for i in range(min(_CHUNK, len(self._rows)))]
            try:
                await self._outbox.add(chunk)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._warn.warning(
                    "retry",
                    "%s: %d usage rows still wait in memory for %.0fs: the database "
                    "cannot be written%s (%s)",
                    self.name,
                    len(self._rows),
                    time.monotonic() - self._since,
                    self._where,
                    exc,
                )
                await asyncio.sleep(self._retry)
                continue
            for _ in chunk:
                self._rows.popleft()
            self._on_durable()
            if not self._rows:
                self._logger.warning(
                    "%s: the database is writable again; every usage row kept in memory "
                    "is durable now (waited %.0fs)",
                    self.name,
                    time.monotonic() - self._since,
                )

    async def close(self, within: float) -> int:
        """Try for at most `within` seconds to store what is kept, then stop.

        Every row still in memory is logged (ERROR, one line per row) and lost;
        returns how many.
        """
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), max(0.0, within))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        lost = list(self._rows)
        self._rows.clear()
        for entry in lost:
            self._logger.error(
                "%s: usage row lost at shutdown, the database could not be written%s "
                "(if its last write landed after all, `lumid billing ls` shows the task: "
                "check before replaying): %s",
                self.name,
                self._where,
                self._describe(entry),
            )
        return len(lost)

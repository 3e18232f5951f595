"""`OutboxWorker`: the delivery task that posts an outbox's due rows, with backoff.

Rows reach it two ways: handed over by the sink right after they became durable
(`offer`, no read back from the store), or read from the store (`due`) when it was
told to look (`wake`), when a retried row falls due, and once per `idle_poll` (rows
replayed by another process, e.g. `lumid billing retry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable

from lumid_core.logs import RateLimitedLog

from .chores import Chores
from .feed import Feed
from .model import Dead, Deliver, Delivered, Held, OutboxEntry, Outcome, Retry
from .settings import WorkerSettings
from .store import OutboxStore

__all__ = ["OutboxWorker", "WorkerSettings"]


class OutboxWorker:
    """Delivers an outbox's due rows with bounded concurrency.

    Backoff: a row that failed `n` times waits `min(max_delay, base_delay * 2**(n-1))`
    scaled by a random factor in [0.5, 1]; after a transient failure the whole queue
    also pauses that long (one probe per interval during an outage instead of a
    stampede), and the first success lifts the pause.
    """

    def __init__(
        self,
        outbox: OutboxStore,
        deliver: Deliver,
        *,
        logger: logging.Logger,
        settings: WorkerSettings | None = None,
        name: str | None = None,
        recheck: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self.outbox = outbox
        self.settings = s = settings or WorkerSettings()
        self.name = name or outbox.sink
        self.logger = logger
        self.warn = RateLimitedLog(logger, s.warn_interval)
        self._deliver = deliver
        self._concurrency = s.concurrency
        self._batch = max(s.batch, s.concurrency)
        self._chores = Chores(
            outbox, name=self.name, logger=logger, warn=self.warn, settings=s, recheck=recheck
        )
        self._wake = asyncio.Event()
        self._feed = Feed(
            outbox,
            name=self.name,
            warn=self.warn,
            batch=self._batch,
            concurrency=s.concurrency,
            idle_poll=s.idle_poll,
        )
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._paused_until = 0.0
        self._failures = 0  # consecutive transient failures
        self._marks: list[tuple[str, Outcome, float]] = []  # outcomes not yet recorded
        self._marker: asyncio.Task[None] | None = None
        self._lingering: asyncio.TimerHandle | None = None  # offered rows wait for it
        self.delivered = 0
        self.retried = 0
        self.dead = 0
        self.held = 0

    def __repr__(self) -> str:
        return f"OutboxWorker({self.name!r})"

    @property
    def _unrecorded(self) -> bool:
        return bool(self._marks) or (self._marker is not None and not self._marker.done())

    @property
    def running(self) -> bool:
        """True while the delivery task runs."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the delivery task (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{self.name}-delivery")

    def wake(self) -> None:
        """Read the store for due rows now (after adding or releasing rows elsewhere)."""
        self._feed.dirty = True
        self._wake.set()

    def offer(self, entries: Iterable[OutboxEntry]) -> None:
        """Queue rows that were just stored as pending, without reading them back.

        Only pass rows exactly as stored (this process inserted them). They go out
        within `linger` seconds, together with rows offered meanwhile (at once when
        they fill every free slot). Rows beyond the in-memory queue's bound are left
        to the next read of the store.
        """
        linger = self.settings.linger
        direct = (
            linger <= 0 and self.running and not self._closing and time.time() >= self._paused_until
        )
        queued = False
        for entry in entries:
            if entry.key in self._feed.claimed:
                continue
            if direct and not self._feed.queue and len(self._inflight) < self._concurrency:
                # A free slot: start the delivery now, without a turn of the loop.
                self._feed.claimed.add(entry.key)
                self._launch(entry)
                continue
            if len(self._feed.queue) >= self._batch:
                self._feed.dirty = True
                continue
            self._feed.claimed.add(entry.key)
            self._feed.queue.append(entry)
            queued = True
        if self._feed.dirty or (queued and linger <= 0) or self._closing:
            self._wake.set()
        elif queued:
            if len(self._feed.queue) >= self._concurrency - len(self._inflight):
                self._wake.set()  # every free slot has a row: no reason to wait
            elif self._lingering is None:
                self._lingering = asyncio.get_running_loop().call_later(linger, self._lingered)

    def _lingered(self) -> None:
        self._lingering = None
        self._wake.set()

    async def drain(self, within: float | None = None, *, poll: float = 0.01) -> bool:
        """Wait until this sink has no pending row and nothing in flight.

        Returns False when `within` seconds pass first. Held and dead rows do not count.
        """
        deadline = None if within is None else time.monotonic() + within
        self.wake()
        while True:
            if (
                not self._inflight
                and not self._feed.queue
                and not self._unrecorded
                and await self.outbox.pending_count() == 0
            ):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(poll)

    async def stop(self, flush_timeout: float = 5.0) -> None:
        """Deliver what is due within `flush_timeout` seconds, then stop.

        Rows still pending stay in the store for the next start.
        """
        task = self._task
        if task is None or task.done():
            return
        self._closing = True
        self.wake()
        try:
            await asyncio.wait_for(asyncio.shield(task), flush_timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            try:
                left = await self.outbox.pending_count()
            except Exception:
                left = 0  # the store is gone: nothing more to say
            if left:
                self.logger.warning(
                    "%s: stopped with %d rows pending; they are sent after the next start",
                    self.name,
                    left,
                )

    # -- the loop ---------------------------------------------------------------

    async def _run(self) -> None:
        s = self.settings
        try:
            while True:
                self._wake.clear()
                mono = time.monotonic()
                if not self._closing and await self._chores.run_due(mono):
                    self._feed.dirty = True  # held rows released: read them
                now = time.time()
                paused = now < self._paused_until
                if not paused:
                    if self._feed.fill_needed(now, mono):
                        await self._feed.fill(now)
                    while self._feed.queue and len(self._inflight) < self._concurrency:
                        self._launch(self._feed.queue.popleft())
                idle = not self._feed.queue and not self._inflight and not self._unrecorded
                if self._closing and (paused or idle):
                    return
                try:
                    await self._sleep(now, paused)
                except Exception as exc:  # e.g. the store is briefly unreadable
                    self.warn.warning("db", "%s: cannot read the outbox: %s", self.name, exc)
                    await asyncio.sleep(s.idle_poll)
        finally:
            if self._lingering is not None:
                self._lingering.cancel()
                self._lingering = None
            for t in list(self._inflight):
                t.cancel()
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            if self._marks and (self._marker is None or self._marker.done()):
                self._marker = asyncio.create_task(self._record_marks())
            if self._marker is not None:
                # Record what is known (bounded by the caller's flush timeout).
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._marker)
            self._feed.clear()

    async def _sleep(self, now: float, paused: bool) -> None:
        if paused:
            timeout = max(0.0, self._paused_until - now)
        elif self._feed.queue and len(self._inflight) < self._concurrency:
            return
        else:
            timeout = max(0.0, self._feed.next_fill - time.monotonic())
            if self._chores.next_recheck is not None:
                recheck_in = self._chores.next_recheck - time.monotonic()
                timeout = min(timeout, max(0.001, recheck_in))
            if self._feed.retry_due is not None:
                timeout = min(timeout, max(0.0, self._feed.retry_due - now))
        if timeout <= 0 and not self._inflight:
            await asyncio.sleep(0.005)  # due now: look again shortly, never spin
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout if timeout > 0 else None):
                await self._wake.wait()

    def _launch(self, row: OutboxEntry) -> None:
        task = asyncio.create_task(self._attempt(row))
        self._inflight.add(task)
        task.add_done_callback(self._landed)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        # A slot for a queued row, stop() waits, or a read of the store is due: the loop
        # may be waiting for this landing alone (a read that took longer than
        # `idle_poll`, e.g. a claim on a busy PostgreSQL, leaves no timer to wake it).
        if (
            (self._feed.queue and self._lingering is None)  # lingering rows: the timer wakes
            or self._closing
            or self._feed.dirty
            or time.monotonic() >= self._feed.next_fill
        ):
            self._wake.set()

    def _delay(self, attempts: int) -> float:
        s = self.settings
        raw = min(s.max_delay, s.base_delay * math.pow(2, max(0, attempts - 1)))
        return raw * (0.5 + random.random() / 2)

    async def _attempt(self, row: OutboxEntry) -> None:
        try:
            try:
                outcome = await self._deliver(row)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in the sink: keep the row, try later
                outcome = Retry(f"delivery raised {type(exc).__name__}: {exc}"[:500])
            next_at = 0.0
            match outcome:
                case Delivered():
                    self.delivered += 1
                    self._failures = 0
                    self._paused_until = 0.0
                case Retry(reason=reason):
                    self.retried += 1
                    self._failures += 1
                    delay = self._delay(row.attempts + 1)
                    next_at = time.time() + delay
                    self._feed.due_at(next_at)
                    self._paused_until = max(
                        self._paused_until, time.time() + self._delay(self._failures)
                    )
                    self._wake.set()  # sleep until the pause or the retry instead
                    self.warn.warning(
                        "retry",
                        "%s: delivery of %s failed (%s); retrying in %.1fs",
                        self.name,
                        row.key,
                        reason,
                        delay,
                    )
                case Dead(reason=reason):
                    self.dead += 1
                    self.warn.warning(
                        "dead",
                        "%s: %s rejected permanently, parked as a dead letter: %s",
                        self.name,
                        row.key,
                        reason,
                    )
                case Held(reason=reason):
                    self.held += 1
                    self.warn.warning("held", "%s: %s held: %s", self.name, row.key, reason)
            self._marks.append((row.key, outcome, next_at))
            if self._marker is None or self._marker.done():
                self._marker = asyncio.create_task(self._record_marks())
        except BaseException:
            self._feed.release(row.key)  # cancelled mid-delivery: nothing to record
            raise

    async def _record_marks(self) -> None:
        """Record the outcomes gathered for up to `mark_delay`, in one group commit.

        Each row stays claimed (never read back as due) until its outcome is durable.
        Outcomes that land while one batch is being written wait `mark_delay` again:
        under a steady stream of deliveries that is one commit per `mark_delay`, not
        one per delivery (each would take the writer from the next `emit`).
        """
        while True:
            if not self._closing:
                await asyncio.sleep(self.settings.mark_delay)
            if not self._marks:
                return
            marks, self._marks = self._marks, []
            try:
                await self.outbox.mark_many(marks)
            except Exception as exc:  # the rows stay pending: sent again later
                self.warn.warning(
                    "db",
                    "%s: cannot record the outcome of %d rows (%s, ...): %s",
                    self.name,
                    len(marks),
                    marks[0][0],
                    exc,
                )
            finally:
                retried = [at for _, outcome, at in marks if isinstance(outcome, Retry)]
                for key, _, _ in marks:
                    self._feed.release(key)
                if retried:  # their new schedule is stored now: wake for the earliest
                    self._feed.due_at(min(retried))
                if self._closing or self._feed.queue or retried:
                    self._wake.set()

"""A durable outbox: rows written in one group commit, delivered later, never lost.

Host-neutral: a sink (e.g. the FlowMesh plugin's Runmesh billing) adds rows under a
unique key and supplies a `deliver` coroutine that classifies each attempt:

- `Delivered()`   -> state `delivered` (kept for inspection, pruned after retention);
- `Retry(reason)` -> stays `pending`, tried again after exponential backoff with jitter;
- `Dead(reason)`  -> state `dead`: parked with the reason until `retry()` replays it;
- `Held(hold_on)` -> state `held` until `release(hold_on)` makes it pending again.

A key is inserted once (`INSERT OR IGNORE`): the first row added under a key wins, so
one key never yields two different deliveries. Payloads are JSON and must never hold
a secret: the CLI prints them.

`Outbox` is the store (usable from any process that opens the same database, e.g.
the CLI while a server runs); `OutboxWorker` is the delivery task a plugin starts
and stops with its install context.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiosqlite

from .db import Database

__all__ = [
    "STATES",
    "Dead",
    "Deliver",
    "Delivered",
    "Held",
    "NewEntry",
    "Outbox",
    "OutboxEntry",
    "OutboxStats",
    "OutboxWorker",
    "Outcome",
    "RateLimitedLog",
    "Retry",
]

STATES: Final = ("pending", "held", "delivered", "dead")

_COLUMNS: Final = (
    "sink, key, state, attempts, created_at, updated_at, reason, payload, hold_on, next_attempt_at"
)
_INSERT_ONE: Final = (
    "INSERT OR IGNORE INTO outbox (sink, key, state, attempts, created_at, updated_at, "
    "next_attempt_at, hold_on, reason, payload) VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?)"
)
_MAX_VALUES_ROWS: Final = 500  # 9 parameters a row, well under SQLite's variable limit
_MARK: Final = (
    "UPDATE outbox SET state = ?, attempts = attempts + 1, updated_at = ?, "
    "next_attempt_at = ?, hold_on = ?, reason = ? "
    "WHERE sink = ? AND key = ? AND state = 'pending'"
)


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    held: int
    delivered: int
    dead: int
    oldest_pending_age_seconds: float | None


@dataclass(frozen=True)
class OutboxEntry:
    sink: str
    key: str
    state: str
    attempts: int
    created_at: float
    updated_at: float
    reason: str | None
    payload: dict[str, Any]
    hold_on: str | None = None
    next_attempt_at: float = 0.0


@dataclass(frozen=True)
class NewEntry:
    """A row to add: `hold_on` set means it starts held (e.g. waiting for an email)."""

    key: str
    payload: Mapping[str, Any]
    hold_on: str | None = None
    reason: str | None = None
    dead: bool = False  # born dead: kept for inspection, never sent until replayed


@dataclass(frozen=True)
class Delivered:
    note: str | None = None


@dataclass(frozen=True)
class Retry:
    reason: str


@dataclass(frozen=True)
class Dead:
    reason: str


@dataclass(frozen=True)
class Held:
    hold_on: str
    reason: str


type Outcome = Delivered | Retry | Dead | Held
type Deliver = Callable[[OutboxEntry], Awaitable[Outcome]]


def _entry(row: Sequence[Any]) -> OutboxEntry:
    try:
        payload = json.loads(row[7])
    except ValueError:
        payload = {"unreadable": str(row[7])[:200]}
    return OutboxEntry(
        sink=row[0],
        key=row[1],
        state=row[2],
        attempts=int(row[3]),
        created_at=float(row[4]),
        updated_at=float(row[5]),
        reason=row[6],
        payload=payload if isinstance(payload, dict) else {"value": payload},
        hold_on=row[8],
        next_attempt_at=float(row[9]),
    )


class Outbox:
    """The rows of one sink in the `outbox` table of a `Database`."""

    def __init__(self, db: Database, sink: str) -> None:
        if not sink:
            raise ValueError("an outbox needs a sink name")
        self.db = db
        self.sink = sink

    def __repr__(self) -> str:
        return f"Outbox({self.sink!r}, {self.db!r})"

    # -- adding -----------------------------------------------------------------

    async def add(self, entries: Sequence[NewEntry], *, now: float | None = None) -> None:
        """Durably add `entries` in one transaction (one group commit); keys already
        present are left as they are. Returns once the rows are on disk."""
        if not entries:
            return
        ts = time.time() if now is None else now
        params: list[Any] = []
        for e in entries:
            state = "dead" if e.dead else ("held" if e.hold_on is not None else "pending")
            payload = json.dumps(dict(e.payload), separators=(",", ":"), sort_keys=True)
            params.extend((self.sink, e.key, state, ts, ts, ts, e.hold_on, e.reason, payload))
        if len(entries) == 1:
            # The same statement as every other single-row add: concurrent emits
            # coalesce into one executemany within a group commit.
            await self.db.write(_INSERT_ONE, params)
            return
        if len(entries) <= _MAX_VALUES_ROWS:
            # One multi-row statement: still one group-committed, atomic write.
            values = ", ".join(["(?, ?, ?, 0, ?, ?, ?, ?, ?, ?)"] * len(entries))
            head = _INSERT_ONE.split(" VALUES ", 1)[0]
            await self.db.write(f"{head} VALUES {values}", params)
            return
        rows = [params[i : i + 9] for i in range(0, len(params), 9)]

        async def work(conn: aiosqlite.Connection) -> None:
            await conn.executemany(_INSERT_ONE, rows)

        await self.db.transaction(work)

    # -- the delivery side ------------------------------------------------------

    async def due(
        self, *, now: float | None = None, limit: int = 256, skip: int = 0
    ) -> list[OutboxEntry]:
        """Pending rows whose next attempt is due, oldest schedule first."""
        ts = time.time() if now is None else now
        rows = await self.db.read_all(
            f"SELECT {_COLUMNS} FROM outbox WHERE sink = ? AND state = 'pending' "  # noqa: S608 (fixed column names)
            "AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ? OFFSET ?",
            (self.sink, ts, int(limit), int(skip)),
        )
        return [_entry(r) for r in rows]

    def next_due_at(self) -> float | None:
        """When the earliest pending row is due (a point read in the calling thread)."""
        row = self.db.read_one(
            "SELECT min(next_attempt_at) FROM outbox WHERE sink = ? AND state = 'pending'",
            (self.sink,),
        )
        return None if row is None or row[0] is None else float(row[0])

    def pending_count(self) -> int:
        row = self.db.read_one(
            "SELECT count(*) FROM outbox WHERE sink = ? AND state = 'pending'", (self.sink,)
        )
        return 0 if row is None else int(row[0])

    def mark(self, key: str, outcome: Outcome, *, next_attempt_at: float = 0.0) -> Awaitable[None]:
        """Record the outcome of one attempt on a pending row (group-committed)."""
        now = time.time()
        match outcome:
            case Delivered():
                args: tuple[Any, ...] = ("delivered", now, now, None, None)
            case Retry(reason=reason):
                args = ("pending", now, next_attempt_at, None, reason)
            case Dead(reason=reason):
                args = ("dead", now, now, None, reason)
            case Held(hold_on=hold_on, reason=reason):
                args = ("held", now, now, hold_on, reason)
        return self.db.write(_MARK, (*args, self.sink, key))

    async def held_on(self) -> list[str]:
        """The distinct `hold_on` values of held rows."""
        return [
            str(v)
            for v in await self.db.read_column(
                "SELECT DISTINCT hold_on FROM outbox WHERE sink = ? AND state = 'held' "
                "AND hold_on IS NOT NULL",
                (self.sink,),
            )
        ]

    async def release(self, hold_on: Iterable[str]) -> int:
        """Held rows waiting on any of `hold_on` become pending now; returns how many."""
        values = list(dict.fromkeys(hold_on))
        if not values:
            return 0
        now = time.time()

        async def work(conn: aiosqlite.Connection) -> int:
            moved = 0
            for value in values:
                cur = await conn.execute(
                    "UPDATE outbox SET state = 'pending', next_attempt_at = ?, updated_at = ?, "
                    "hold_on = NULL WHERE sink = ? AND state = 'held' AND hold_on = ?",
                    (now, now, self.sink, value),
                )
                moved += cur.rowcount
            return moved

        return await self.db.transaction(work)

    async def prune_delivered(self, older_than_seconds: float) -> int:
        """Forget delivered rows last updated more than `older_than_seconds` ago."""
        cutoff = time.time() - older_than_seconds

        async def work(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(
                "DELETE FROM outbox WHERE sink = ? AND state = 'delivered' AND updated_at < ?",
                (self.sink, cutoff),
            )
            return cur.rowcount

        return await self.db.transaction(work)

    # -- inspection and replay (the CLI) ----------------------------------------

    async def stats(self) -> OutboxStats:
        rows = await self.db.read_all(
            "SELECT state, count(*), min(created_at) FROM outbox WHERE sink = ? GROUP BY state",
            (self.sink,),
        )
        counts = {str(r[0]): int(r[1]) for r in rows}
        oldest = next((r[2] for r in rows if r[0] == "pending"), None)
        return OutboxStats(
            pending=counts.get("pending", 0),
            held=counts.get("held", 0),
            delivered=counts.get("delivered", 0),
            dead=counts.get("dead", 0),
            oldest_pending_age_seconds=(
                None if oldest is None else max(0.0, time.time() - float(oldest))
            ),
        )

    async def entries(self, *, state: str | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Rows of this sink (of one state when given), oldest first."""
        if state is not None and state not in STATES:
            raise ValueError(f"unknown outbox state {state!r}; expected one of {', '.join(STATES)}")
        where = "sink = ?" + ("" if state is None else " AND state = ?")
        params: tuple[Any, ...] = (self.sink,) if state is None else (self.sink, state)
        rows = await self.db.read_all(
            f"SELECT {_COLUMNS} FROM outbox WHERE {where} ORDER BY created_at, key LIMIT ?",  # noqa: S608 (fixed column names)
            (*params, max(0, int(limit))),
        )
        return [_entry(r) for r in rows]

    async def entry(self, key: str) -> OutboxEntry | None:
        rows = await self.db.read_all(
            f"SELECT {_COLUMNS} FROM outbox WHERE sink = ? AND key = ?",  # noqa: S608 (fixed column names)
            (self.sink, key),
        )
        return _entry(rows[0]) if rows else None

    async def retry(self, *, key: str | None = None, all_dead: bool = False) -> int:
        """Replay dead letters: dead -> pending, due now. Returns the rows moved.

        Give exactly one of `key` (one row) or `all_dead=True`.
        """
        if (key is None) == (not all_dead):
            raise ValueError("retry needs exactly one of key=... or all_dead=True")
        now = time.time()
        sql = (
            "UPDATE outbox SET state = 'pending', next_attempt_at = ?, updated_at = ?, "
            "attempts = 0 WHERE sink = ? AND state = 'dead'"
        )
        params: tuple[Any, ...] = (now, now, self.sink)
        if key is not None:
            sql += " AND key = ?"
            params = (*params, key)

        async def work(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(sql, params)
            return cur.rowcount

        return await self.db.transaction(work)


class RateLimitedLog:
    """At most one log line per topic per `interval` seconds, counting the rest."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, topic: str, msg: str, *args: object) -> bool:
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
        return self.log(logging.WARNING, topic, msg, *args)


class OutboxWorker:
    """Delivers an outbox's due rows with bounded concurrency.

    Backoff: a row that failed `n` times waits `min(max_delay, base_delay * 2**(n-1))`
    scaled by a random factor in [0.5, 1]; after a transient failure the whole queue
    also pauses that long (one probe per interval during an outage instead of a
    stampede), and the first success lifts the pause.
    """

    def __init__(
        self,
        outbox: Outbox,
        deliver: Deliver,
        *,
        logger: logging.Logger,
        name: str | None = None,
        concurrency: int = 16,
        batch: int = 512,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        idle_poll: float = 1.0,
        status_interval: float = 60.0,
        warn_interval: float = 60.0,
        recheck: Callable[[], Awaitable[int]] | None = None,
        recheck_interval: float = 30.0,
        retention_seconds: float = 30 * 86400.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.outbox = outbox
        self.name = name or outbox.sink
        self.logger = logger
        self.warn = RateLimitedLog(logger, warn_interval)
        self._deliver = deliver
        self._concurrency = concurrency
        self._batch = max(batch, concurrency)
        self._base = base_delay
        self._max = max_delay
        self._idle_poll = idle_poll
        self._status_interval = status_interval
        self._recheck = recheck
        self._recheck_interval = recheck_interval
        self._retention = retention_seconds
        self._wake = asyncio.Event()
        self._queue: deque[OutboxEntry] = deque()
        self._claimed: set[str] = set()
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._paused_until = 0.0
        self._failures = 0  # consecutive transient failures
        self._next_recheck = 0.0  # monotonic time of the next held-row re-check
        self._finished_during_fill: set[str] | None = None
        self.delivered = 0
        self.retried = 0
        self.dead = 0
        self.held = 0

    def __repr__(self) -> str:
        return f"OutboxWorker({self.name!r})"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{self.name}-delivery")

    def wake(self) -> None:
        """Look for due rows now (call after adding rows or releasing held ones)."""
        self._wake.set()

    async def drain(self, within: float | None = None, *, poll: float = 0.01) -> bool:
        """Wait until this sink has no pending row and nothing in flight.

        Returns False when `within` seconds pass first. Held and dead rows do not count.
        """
        deadline = None if within is None else time.monotonic() + within
        self.wake()
        while True:
            if not self._inflight and not self._queue and self.outbox.pending_count() == 0:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(poll)

    async def stop(self, flush_timeout: float = 5.0) -> None:
        """Deliver what is due within `flush_timeout` seconds, then stop.

        Rows still pending stay in the database for the next start.
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
                left = self.outbox.pending_count()
            except Exception:
                left = 0  # the database is gone: nothing more to say
            if left:
                self.logger.warning(
                    "%s: stopped with %d rows pending; they are sent after the next start",
                    self.name,
                    left,
                )

    # -- the loop ---------------------------------------------------------------

    async def _run(self) -> None:
        next_status = time.monotonic() + self._status_interval
        next_prune = time.monotonic() + 60.0
        try:
            while True:
                self._wake.clear()
                mono = time.monotonic()
                if not self._closing:
                    if mono >= next_status:
                        next_status = mono + self._status_interval
                        await self._log_status()
                    if self._recheck is not None and mono >= self._next_recheck:
                        self._next_recheck = mono + self._recheck_interval
                        await self._run_recheck()
                    if mono >= next_prune:
                        next_prune = mono + 3600.0
                        await self._prune()
                now = time.time()
                paused = now < self._paused_until
                if not paused:
                    await self._fill(now)
                    while self._queue and len(self._inflight) < self._concurrency:
                        self._launch(self._queue.popleft())
                if self._closing and (paused or (not self._queue and not self._inflight)):
                    return
                try:
                    await self._sleep(now, paused)
                except Exception as exc:  # e.g. the database is briefly unreadable
                    self.warn.warning("db", "%s: cannot read the outbox: %s", self.name, exc)
                    await asyncio.sleep(self._idle_poll)
        finally:
            for t in list(self._inflight):
                t.cancel()
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            self._queue.clear()
            self._claimed.clear()

    async def _fill(self, now: float) -> None:
        if len(self._queue) >= self._concurrency:
            return
        # A row whose outcome is recorded while this read runs may still show as
        # pending in the read's snapshot: remember such keys and skip them.
        finished: set[str] = set()
        self._finished_during_fill = finished
        try:
            rows = await self.outbox.due(now=now, limit=self._batch + len(self._claimed), skip=0)
        except Exception as exc:
            self.warn.warning("db", "%s: cannot read the outbox: %s", self.name, exc)
            return
        finally:
            self._finished_during_fill = None
        for row in rows:
            if row.key not in self._claimed and row.key not in finished:
                self._claimed.add(row.key)
                self._queue.append(row)

    async def _sleep(self, now: float, paused: bool) -> None:
        if paused:
            timeout = max(0.0, self._paused_until - now)
        elif self._queue and len(self._inflight) < self._concurrency:
            return
        else:
            timeout = self._idle_poll
            if self._recheck is not None:
                timeout = min(timeout, max(0.001, self._next_recheck - time.monotonic()))
            if not self._inflight:
                nxt = self.outbox.next_due_at()
                if nxt is not None:
                    timeout = min(timeout, max(0.0, nxt - now))
        if timeout <= 0 and not self._inflight:
            await asyncio.sleep(0.005)  # due now: look again shortly, never spin
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout if timeout > 0 else None)

    def _launch(self, row: OutboxEntry) -> None:
        task = asyncio.create_task(self._attempt(row))
        self._inflight.add(task)
        task.add_done_callback(self._landed)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    def _delay(self, attempts: int) -> float:
        raw = min(self._max, self._base * math.pow(2, max(0, attempts - 1)))
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
                    self._paused_until = max(
                        self._paused_until, time.time() + self._delay(self._failures)
                    )
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
            try:
                await self.outbox.mark(row.key, outcome, next_attempt_at=next_at)
            except Exception as exc:
                self.warn.warning(
                    "db", "%s: cannot record the outcome of %s: %s", self.name, row.key, exc
                )
        finally:
            self._claimed.discard(row.key)
            if self._finished_during_fill is not None:
                self._finished_during_fill.add(row.key)

    async def _run_recheck(self) -> None:
        assert self._recheck is not None
        try:
            released = await self._recheck()
        except Exception as exc:
            self.warn.warning("recheck", "%s: re-checking held rows failed: %s", self.name, exc)
            return
        if released:
            self.logger.info("%s: %d held rows released for delivery", self.name, released)

    async def _prune(self) -> None:
        try:
            await self.outbox.prune_delivered(self._retention)
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

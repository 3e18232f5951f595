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

Modules: `model` (records, outcomes), `rows` (columns <-> records, shared by the
stores), `store` (the `OutboxStore` protocol),
`sqlite` (`Outbox`, the SQLite store), `worker` (`OutboxWorker`), `feed` (the
worker's queue of claimed rows and its reads of the store), `settings`
(`WorkerSettings`), `chores` (status line, held-row re-check, pruning), `spool`
(rows waiting in memory while the store cannot be written).
"""

from lumid_core.logs import RateLimitedLog

from .model import (
    STATES,
    Dead,
    Deliver,
    Delivered,
    Held,
    NewEntry,
    OutboxEntry,
    OutboxStats,
    Outcome,
    Retry,
)
from .settings import WorkerSettings
from .spool import Spool
from .sqlite import Outbox
from .store import OutboxStore
from .worker import OutboxWorker

SqliteOutbox = Outbox
"""`Outbox` under a name that says which store it is."""

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
    "OutboxStore",
    "OutboxWorker",
    "Outcome",
    "RateLimitedLog",
    "Retry",
    "Spool",
    "SqliteOutbox",
    "WorkerSettings",
]

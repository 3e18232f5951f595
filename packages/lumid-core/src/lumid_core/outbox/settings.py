"""`WorkerSettings`: the outbox delivery worker's tuning knobs in one frozen object."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WorkerSettings"]


@dataclass(frozen=True)
class WorkerSettings:
    """The delivery worker's tuning knobs (seconds unless said otherwise)."""

    concurrency: int = 16
    """Deliveries in flight at most."""
    batch: int = 512
    """Rows read from the store (or queued in memory) at most at once."""
    base_delay: float = 1.0
    """Backoff after a row's first transient failure; doubles per attempt."""
    max_delay: float = 300.0
    """Backoff ceiling."""
    idle_poll: float = 1.0
    """How often the store is read for rows nobody handed over."""
    status_interval: float = 60.0
    """How often a status line is logged while anything is pending, held or dead."""
    warn_interval: float = 60.0
    """At most one failure warning per kind per this interval."""
    recheck_interval: float = 30.0
    """How often held rows are re-checked (when a `recheck` is given)."""
    retention_seconds: float = 30 * 86400.0
    """Delivered rows older than this are pruned."""
    prune_interval: float = 3600.0
    """How often pruning runs."""
    linger: float = 0.002
    """A row handed over by `offer` waits up to this long for others, so deliveries go
    out together (at once when a slot-full is queued): a stream of single-row emits
    then costs the event loop far less than one delivery started per row (0: start
    each at once)."""
    mark_delay: float = 0.05
    """Outcomes are recorded together, at most this long after the attempt: one
    transaction for many rows (a row whose outcome is lost in a crash is sent again,
    which the sink's idempotency makes harmless)."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.batch < 1 or self.idle_poll <= 0 or self.base_delay <= 0:
            raise ValueError("batch, idle_poll and base_delay must be positive")
        if self.linger < 0 or self.mark_delay < 0:
            raise ValueError("linger and mark_delay must not be negative")

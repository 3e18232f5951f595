"""Runmesh billing that loses nothing: usage rows -> durable outbox -> Runmesh.

`emit()` turns FlowMesh's usage rows into outbox rows keyed by task id and writes
them in one group commit, hands them to the delivery worker and returns: it never
waits on Runmesh. When the database cannot be written (another process holds the
write lock, the disk is full) the rows wait in a bounded in-memory spool that keeps
retrying. The outbox worker (`lumid_core.outbox.OutboxWorker`) posts them with
bounded concurrency and backoff; `delivery.runmesh_delivery` addresses each row by
the principal's email as recorded by identity (the `principals` table) and classifies
Runmesh's reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from flowmesh_hook import UsageRow

from lumid_core import Database, PrincipalDirectory
from lumid_core.logs import RateLimitedLog
from lumid_core.outbox import (
    NewEntry,
    Outbox,
    OutboxStats,
    OutboxWorker,
    Spool,
    WorkerSettings,
)
from lumid_core.outbox import OutboxEntry as Entry
from lumid_core.store.parents import ParentLinks

from .delivery import runmesh_delivery
from .entries import (
    UNKNOWN_WORKFLOW_ID,
    CostBounds,
    describe_entry,
    entry_body,
    fields,
    row_to_entry,
    text,
)
from .registrar import workflow_of
from .runmesh import RunmeshClient
from .settings import FlowMeshSettings

if TYPE_CHECKING:  # asyncpg is imported only when LUMID_DATABASE_URL selects it
    from lumid_core.pg import PgDatabase, PgOutbox

__all__ = [
    "BILLING_SINK",
    "UNKNOWN_WORKFLOW_ID",
    "CostBounds",
    "RunmeshBilling",
    "RunmeshUsageSink",
    "entry_body",
    "open_billing",
    "row_to_entry",
]

BILLING_SINK: Final = "runmesh"
"""The outbox sink name of FlowMesh's Runmesh entries (`lumid billing --sink runmesh`)."""

EMIT_WAIT_SECONDS: Final = 2.0
"""How long `emit` waits for its rows to be durable before keeping them in the spool."""
_KNOWN_CAP: Final = 100_000
"""Principals remembered as having an email (the set is emptied when full)."""


def _store_var(db: Database | PgDatabase) -> str:
    """The variable that selects the store `db` (named where billing rows wait)."""
    return "LUMID_ACL_DB_PATH" if isinstance(db, Database) else "LUMID_DATABASE_URL"


class RunmeshUsageSink:
    """`flowmesh_hook.FlowMeshUsageSink`: rows go to the durable outbox, nothing else.

    When the database cannot be written the rows wait in `spool` (bounded, retried);
    a row beyond its bound is logged as an ERROR with its task id and cost.
    """

    def __init__(
        self,
        *,
        name: str,
        outbox: Outbox | PgOutbox,
        directory: PrincipalDirectory,
        parents: ParentLinks,
        worker: OutboxWorker | None = None,
        bounds: CostBounds | None = None,
        spool_rows: int = 100_000,
    ) -> None:
        self.name = name
        self._outbox = outbox
        self._db = outbox.db
        self._directory = directory
        self._parents = parents
        self._worker = worker
        self._bounds = bounds or CostBounds()
        # Principals whose email is known (it is never forgotten): no read per row.
        self._emails_known: set[str] = set()
        self._warn = RateLimitedLog(logging.getLogger(name.split(".", 1)[0]), 60.0)
        self.spool = Spool(
            outbox,
            logger=logging.getLogger(name.split(".", 1)[0]),
            name=name,
            capacity=spool_rows,
            describe=describe_entry,
            on_durable=worker.wake if worker is not None else (lambda: None),
            where=f" ({_store_var(self._db)}={str(self._db.path)!r})",
        )

    def __repr__(self) -> str:
        return f"RunmeshUsageSink(name={self.name!r})"

    async def _entry(self, row: object) -> NewEntry:
        row_fields = fields(row)
        principal_id = text(row_fields.get("principal_id"))
        task_id = text(row_fields.get("task_id"))
        known = principal_id in self._emails_known
        if principal_id and not known:
            try:
                known = await self._directory.email_for(principal_id) is not None
            except Exception:  # unreadable now: held, released once it reads again
                known = False
            if known:
                if len(self._emails_known) >= _KNOWN_CAP:
                    self._emails_known.clear()
                self._emails_known.add(principal_id)
        try:
            workflow_id = await workflow_of(self._parents, task_id) if task_id else None
        except Exception:  # looked up again at delivery time
            workflow_id = None
        return row_to_entry(row, email_known=known, workflow_id=workflow_id, bounds=self._bounds)

    async def emit(self, rows: Sequence[UsageRow], logger: logging.Logger) -> None:
        """Store `rows` durably (or, while the database cannot be written, in the spool)."""
        if not rows:
            return
        try:
            entries = [await self._entry(row) for row in rows]
        except Exception as exc:  # a bug turning a row into an entry: say what is lost
            lost = ", ".join(
                f"{text(fields(r).get('task_id'))}={text(fields(r).get('cost'))}" for r in rows
            )
            logger.error(
                "%s: could not read %d usage rows for billing (task=cost: %s): %s",
                self.name,
                len(rows),
                lost[:1000],
                exc,
            )
            return
        self._warn_unbillable(entries)
        if len(self.spool):  # earlier rows still wait: keep the order, do not wait again
            self._refused(self.spool.put(entries), logger)
            return
        now = time.time()
        try:
            async with asyncio.timeout(EMIT_WAIT_SECONDS):
                inserted = await self._outbox.add(entries, now=now)
        except Exception as exc:  # the database cannot be written now: keep them in memory
            # (a write that still lands later is harmless: the spool's insert of the
            # same keys is then ignored, and the worker finds the rows in the store)
            reason = (
                exc
                if not isinstance(exc, TimeoutError)
                else f"no commit within {EMIT_WAIT_SECONDS:g}s"
            )
            self._refused(self.spool.put(entries, reason), logger)
            return
        if self._worker is None:
            return
        if inserted == len(entries):
            # Stored exactly as built: hand them over, no read back from the database.
            self._worker.offer(
                Entry(
                    sink=self._outbox.sink,
                    key=e.key,
                    state="pending",
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                    reason=e.reason,
                    payload=dict(e.payload),
                    next_attempt_at=now,
                )
                for e in entries
                if e.state == "pending"
            )
        else:  # some keys were already there: let the worker read what is stored
            self._worker.wake()

    def _refused(self, refused: Sequence[NewEntry], logger: logging.Logger) -> None:
        for entry in refused:
            logger.error(
                "%s: usage row LOST, the database cannot be written and %d rows already "
                "wait in memory (the bound, LUMID_BILLING_SPOOL_ROWS): %s",
                self.name,
                self.spool.capacity,
                describe_entry(entry),
            )

    def _warn_unbillable(self, entries: Sequence[NewEntry]) -> None:
        for entry in entries:
            if entry.dead:
                self._warn.log(
                    logging.ERROR,
                    "invalid",
                    "%s: usage row %s kept as a dead letter, not billable: %s",
                    self.name,
                    entry.key,
                    entry.reason,
                )
            elif entry.hold_on is not None:
                self._warn.warning(
                    "held",
                    "%s: task %s held until the email of principal %s is known",
                    self.name,
                    entry.key,
                    entry.hold_on,
                )


@dataclass(frozen=True)
class RunmeshBilling:
    """Everything billing opened at install; closed by `open_billing`'s exit."""

    sink: RunmeshUsageSink
    outbox: Outbox | PgOutbox
    worker: OutboxWorker
    client: RunmeshClient

    async def stats(self) -> OutboxStats:
        """The outbox's counts per state."""
        return await self.outbox.stats()

    async def drain(self, within: float | None = None) -> bool:
        """Wait until no row is pending (benchmarks, tests); False on timeout."""
        return await self.worker.drain(within)


def worker_settings(settings: FlowMeshSettings) -> WorkerSettings:
    """The delivery worker's knobs from the LUMID_BILLING_* variables."""
    return WorkerSettings(
        concurrency=settings.lumid_billing_concurrency,
        status_interval=settings.lumid_billing_status_interval_seconds,
        recheck_interval=settings.lumid_billing_held_recheck_seconds,
        base_delay=settings.lumid_billing_retry_base_seconds,
        max_delay=max(
            settings.lumid_billing_retry_max_seconds, settings.lumid_billing_retry_base_seconds
        ),
        retention_seconds=settings.lumid_billing_retention_days * 86400.0,
    )


@asynccontextmanager
async def open_billing(
    settings: FlowMeshSettings,
    *,
    outbox: Outbox | PgOutbox,
    directory: PrincipalDirectory,
    parents: ParentLinks,
    plugin: str,
    logger: logging.Logger,
) -> AsyncIterator[RunmeshBilling]:
    """Start Runmesh billing; on exit flush within LUMID_BILLING_FLUSH_SECONDS."""
    base_url = settings.runmesh_billing_base_url
    if base_url is None or not settings.bridge_secret:
        raise ValueError(settings.billing_off_reason or "billing is off")
    client = RunmeshClient(
        base_url,
        settings.bridge_secret,
        delivery_timeout=settings.lumid_billing_timeout_seconds,
        delivery_concurrency=settings.lumid_billing_concurrency,
        guard_timeout=settings.lumid_balance_guard_timeout_seconds,
    )

    async def recheck() -> int:
        waiting = await outbox.held_on()
        known = [p for p in waiting if await directory.email_for(p) is not None]
        released = await outbox.release(known)
        if released:
            worker.wake()
        return released

    worker = OutboxWorker(
        outbox,
        runmesh_delivery(client, directory, parents),
        logger=logger,
        name=f"{plugin}.billing",
        settings=worker_settings(settings),
        recheck=recheck,
    )
    sink = RunmeshUsageSink(
        name=f"{plugin}.billing",
        outbox=outbox,
        directory=directory,
        parents=parents,
        worker=worker,
        bounds=CostBounds(
            max_cost=settings.lumid_billing_max_cost,
            max_duration_seconds=settings.lumid_billing_max_duration_seconds,
        ),
        spool_rows=settings.lumid_billing_spool_rows,
    )
    try:
        worker.start()
        yield RunmeshBilling(sink=sink, outbox=outbox, worker=worker, client=client)
    finally:
        try:
            # Rows kept in memory first (they become durable, then deliverable), then
            # deliveries, both within the one flush budget.
            flush = settings.lumid_billing_flush_seconds
            started = time.monotonic()
            await sink.spool.close(flush)
            await worker.stop(max(0.0, flush - (time.monotonic() - started)))
        finally:
            await client.aclose()

"""`GrantStore` on PostgreSQL: one prepared point read per check, bulk work via COPY/unnest.

No cache: every `level` is one primary-key lookup on the server, so a grant or a
revoke through any replica counts on every replica's next check (zero staleness).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any, Final

from lumid_core.store.base import Grant, Level, ReconcileResult

from .database import DRIVER_ERRORS, NOW, PgDatabase, PgTable, row_count
from .schema import RECONCILE_LOCK

__all__ = ["PgGrantStore"]

_UPSERT: Final = (
    "INSERT INTO lumid_grants AS g (kind, id, principal_id, level, granted_at, last_seen_at) "  # noqa: S608 (constant SQL)
    f"VALUES ($1, $2, $3, $4, {NOW}, {NOW}) "
    "ON CONFLICT (kind, id, principal_id) DO UPDATE SET "
    "level = GREATEST(g.level, excluded.level), last_seen_at = excluded.last_seen_at"
)
# Concurrent grants share one statement (a group commit): sorted by key, so two
# replicas' batches lock rows in the same order and never deadlock.
_UPSERT_MANY: Final = (
    "INSERT INTO lumid_grants AS g (kind, id, principal_id, level, granted_at, last_seen_at) "  # noqa: S608 (constant SQL)
    f"SELECT k, i, p, l, {NOW}, {NOW} "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[]) AS t(k, i, p, l) "
    "ORDER BY k, i, p ON CONFLICT (kind, id, principal_id) DO UPDATE SET "
    "level = GREATEST(g.level, excluded.level), last_seen_at = excluded.last_seen_at"
)
_LEVEL: Final = "SELECT level FROM lumid_grants WHERE kind = $1 AND id = $2 AND principal_id = $3"
_IDS: Final = "SELECT id FROM lumid_grants WHERE principal_id = $1 AND kind = $2 AND level >= $3"
_REVOKE: Final = "DELETE FROM lumid_grants WHERE kind = $1 AND id = $2 AND principal_id = $3"
_DELETE: Final = "DELETE FROM lumid_grants WHERE kind = $1 AND id = $2"
_IMPORT: Final = (
    "INSERT INTO lumid_grants AS g (kind, id, principal_id, level, granted_at, last_seen_at) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::float8[], "
    "$6::float8[]) ON CONFLICT (kind, id, principal_id) DO UPDATE SET "
    "level = GREATEST(g.level, excluded.level), "
    "granted_at = LEAST(g.granted_at, excluded.granted_at), "
    "last_seen_at = GREATEST(g.last_seen_at, excluded.last_seen_at)"
)
_SWEEP: Final = (
    "DELETE FROM lumid_grants g WHERE g.kind = ANY($1::text[]) AND g.last_seen_at < $2 "
    "AND NOT EXISTS (SELECT 1 FROM lumid_live l WHERE l.kind = g.kind AND l.id = g.id)"
)
_PAGE: Final = 1000
_CHUNK: Final = 10_000


class PgGrantStore(PgTable):
    """Grants in the `lumid_grants` table of a shared PostgreSQL database."""

    def __init__(self, db: PgDatabase) -> None:
        super().__init__(db)
        self._pending: list[tuple[str, str, str, int, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def grant(self, kind: str, id: str, principal_id: str, level: Level) -> None:
        """Upsert a grant (never lowering its level); committed when this returns.

        Grants arriving in the same event-loop turn are written by one statement.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((kind, id, principal_id, int(level), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # let every grant ready in this turn join the batch
            batch, self._pending = self._pending, []
            try:
                await self._write(batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch, self._db.error(exc, "writing a grant"))
                    continue
                for item in batch:  # one bad row must not fail its neighbours
                    try:
                        await self._write([item])
                    except Exception as one:
                        _settle([item], self._db.error(one, "writing a grant"))
                    else:
                        _settle([item], None)
                continue
            except BaseException as exc:  # cancelled: nobody may think it landed
                _settle(batch, exc)
                raise
            _settle(batch, None)

    async def _write(self, batch: list[tuple[str, str, str, int, asyncio.Future[None]]]) -> None:
        if len(batch) == 1:
            kind, rid, principal, level, _ = batch[0]
            await self._pool.execute(_UPSERT, kind, rid, principal, level)
            return
        merged: dict[tuple[str, str, str], int] = {}
        for kind, rid, principal, level, _ in batch:
            key = (kind, rid, principal)
            merged[key] = max(level, merged.get(key, 0))
        keys = list(merged)
        await self._pool.execute(
            _UPSERT_MANY,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            list(merged.values()),
        )

    async def revoke(self, kind: str, id: str, principal_id: str) -> bool:
        """Remove one grant; True when there was one."""
        try:
            return row_count(await self._pool.execute(_REVOKE, kind, id, principal_id)) > 0
        except DRIVER_ERRORS as exc:
            raise self._db.error(exc, "revoking a grant") from None

    async def delete_resource(self, kind: str, id: str) -> int:
        """Remove every grant on one resource; returns how many."""
        try:
            return row_count(await self._pool.execute(_DELETE, kind, id))
        except DRIVER_ERRORS as exc:
            raise self._db.error(exc, "deleting grants") from None

    async def level(self, kind: str, id: str, principal_id: str) -> Level | None:
        """One prepared primary-key read (asyncpg caches the statement per connection).

        Raises `PgStoreError` (a `lumid_core.errors.StoreError`) when the server cannot answer.
        """
        try:
            value = await self._pool.fetchval(_LEVEL, kind, id, principal_id)
        except DRIVER_ERRORS as exc:
            raise self._db.error(exc, "reading a grant") from None
        return None if value is None else Level(value)

    async def ids(self, kind: str, principal_id: str, min_level: Level) -> frozenset[str]:
        """Ids of `kind` on which the principal holds at least `min_level` (index-only)."""
        try:
            rows = await self._pool.fetch(_IDS, principal_id, kind, int(min_level))
        except DRIVER_ERRORS as exc:
            raise self._db.error(exc, "listing grants") from None
        return frozenset(r[0] for r in rows)

    async def import_grants(self, grants: Iterable[Grant]) -> int:
        """Upsert many grants in one transaction (all or nothing); returns how many.

        Levels are never lowered; an existing grant keeps its earliest `granted_at`
        and its latest `last_seen_at`. Sent as unnest arrays, 10k rows a statement.
        """
        total = 0
        async with self._pool.acquire() as conn, conn.transaction():
            chunk: dict[tuple[str, str, str], list[Any]] = {}
            for g in grants:
                total += 1
                key = (g.kind, g.id, g.principal_id)
                seen = chunk.get(key)
                if seen is None:
                    chunk[key] = [int(g.level), g.granted_at, g.last_seen_at]
                else:  # one statement may not touch a row twice: merge duplicates here
                    seen[0] = max(seen[0], int(g.level))
                    seen[1] = min(seen[1], g.granted_at)
                    seen[2] = max(seen[2], g.last_seen_at)
                if len(chunk) >= _CHUNK:
                    await _import_chunk(conn, chunk)
                    chunk = {}
            if chunk:
                await _import_chunk(conn, chunk)
        return total

    async def reconcile(self, live: Iterable[tuple[str, str]]) -> ReconcileResult:
        """Drop stale grants of the kinds present in `live`, atomically.

        Grants written since this store opened (server clock) are kept. The live
        refs are COPYed into a temporary table and the sweep is one anti-join
        DELETE; replicas reconciling at once take turns on an advisory lock.
        """
        kinds: set[str] = set()
        records: list[tuple[str, str]] = []
        for kind, rid in live:
            kinds.add(kind)
            records.append((kind, rid))
        if not kinds:
            return ReconcileResult(kinds=frozenset(), live=0, removed=0)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", RECONCILE_LOCK)
            await conn.execute(
                'CREATE TEMPORARY TABLE lumid_live (kind text COLLATE "C", id text COLLATE "C") '
                "ON COMMIT DROP"
            )
            await conn.copy_records_to_table("lumid_live", records=records, columns=["kind", "id"])
            await conn.execute("ANALYZE lumid_live")
            status = await conn.execute(_SWEEP, sorted(kinds), self._db.opened_at)
        return ReconcileResult(kinds=frozenset(kinds), live=len(records), removed=row_count(status))

    async def iter_grants(
        self,
        *,
        kind: str | None = None,
        id: str | None = None,
        principal_id: str | None = None,
    ) -> AsyncIterator[Grant]:
        """Every grant matching the filters, in (kind, id, principal_id) byte order."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("kind", kind), ("id", id), ("principal_id", principal_id)):
            if value is not None:
                params.append(value)
                where.append(f"{column} = ${len(params) + 3}")
        clause = (" AND " + " AND ".join(where)) if where else ""
        sql = (
            "SELECT kind, id, principal_id, level, granted_at, last_seen_at FROM lumid_grants "  # noqa: S608 (fixed column names)
            f"WHERE (kind, id, principal_id) > ($1, $2, $3){clause} "
            f"ORDER BY kind, id, principal_id LIMIT {_PAGE}"
        )
        after: tuple[str, str, str] = ("", "", "")
        while True:
            rows = await self._pool.fetch(sql, *after, *params)
            for r in rows:
                yield Grant(r[0], r[1], r[2], Level(r[3]), float(r[4]), float(r[5]))
            if len(rows) < _PAGE:
                return
            last = rows[-1]
            after = (last[0], last[1], last[2])


def _settle(
    batch: list[tuple[str, str, str, int, asyncio.Future[None]]], exc: BaseException | None
) -> None:
    for *_, future in batch:
        if future.done():
            continue
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)


async def _import_chunk(conn: Any, chunk: dict[tuple[str, str, str], list[Any]]) -> None:
    keys = list(chunk)
    values = list(chunk.values())
    await conn.execute(
        _IMPORT,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [v[0] for v in values],
        [v[1] for v in values],
        [v[2] for v in values],
    )

"""`GrantStore` on the plugin's SQLite database."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, Final

import aiosqlite

from lumid_core.db import Database

from .base import Grant, Level, ReconcileResult

__all__ = ["SqliteGrantStore"]

_UPSERT: Final = (
    "INSERT INTO grants (kind, id, principal_id, level, granted_at, last_seen_at) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (kind, id, principal_id) DO UPDATE SET "
    "level = max(level, excluded.level), last_seen_at = excluded.last_seen_at"
)
_LEVEL: Final = "SELECT level FROM grants WHERE kind = ? AND id = ? AND principal_id = ?"
_IDS: Final = "SELECT id FROM grants WHERE principal_id = ? AND kind = ? AND level >= ?"
_PAGE: Final = 1000
# reconcile: stale ids of one kind (grants untouched since the store opened), and
# their deletion; rows written since the open keep their resource alive.
_SWEEP_SCAN: Final = "SELECT DISTINCT id FROM grants WHERE kind = ? AND last_seen_at < ?"
_SWEEP_DELETE: Final = "DELETE FROM grants WHERE kind = ? AND id = ? AND last_seen_at < ?"
_SWEEP_PAGE: Final = 10_000
# Bulk import (the `lumid acl import` command): like `_UPSERT`, never lowering a level,
# and keeping the earliest grant time and the latest sighting of each grant.
_IMPORT: Final = (
    "INSERT INTO grants (kind, id, principal_id, level, granted_at, last_seen_at) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (kind, id, principal_id) DO UPDATE SET "
    "level = max(level, excluded.level), granted_at = min(granted_at, excluded.granted_at), "
    "last_seen_at = max(last_seen_at, excluded.last_seen_at)"
)


class SqliteGrantStore:
    """Grants in the `grants` table of a `Database`.

    `level` runs in the event loop on the point reader (a primary-key lookup);
    `ids` runs on the bulk reader's thread; writes go through group commits.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"SqliteGrantStore({self._db!r})"

    async def grant(self, kind: str, id: str, principal_id: str, level: Level) -> None:
        """Upsert the grant (never lowering its level) in a group commit; durable on return."""
        now = time.time()
        await self._db.write(_UPSERT, (kind, id, principal_id, int(level), now, now))

    async def revoke(self, kind: str, id: str, principal_id: str) -> bool:
        """Delete one grant in its own transaction; True when there was one."""

        async def work(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(
                "DELETE FROM grants WHERE kind = ? AND id = ? AND principal_id = ?",
                (kind, id, principal_id),
            )
            return cur.rowcount

        return await self._db.transaction(work) > 0

    async def delete_resource(self, kind: str, id: str) -> int:
        """Delete every grant on `(kind, id)` in one transaction; returns how many."""

        async def work(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute("DELETE FROM grants WHERE kind = ? AND id = ?", (kind, id))
            return cur.rowcount

        return await self._db.transaction(work)

    async def import_grants(self, grants: Iterable[Grant]) -> int:
        """Upsert many grants in one transaction (all or nothing); returns how many.

        Levels are never lowered; an existing grant keeps its earliest `granted_at`
        and its latest `last_seen_at`. Additive to the `GrantStore` interface.
        """
        db = self._db
        rows = (
            (g.kind, g.id, g.principal_id, int(g.level), g.granted_at, g.last_seen_at)
            for g in grants
        )

        async def work(conn: aiosqlite.Connection) -> int:
            return await db.executemany_streamed(conn, _IMPORT, rows)

        return await db.transaction(work)

    async def level(self, kind: str, id: str, principal_id: str) -> Level | None:
        """The principal's level on `(kind, id)`, or None: a point read in the event loop."""
        row = self._db.read_one(_LEVEL, (kind, id, principal_id))
        return None if row is None else Level(row[0])

    async def ids(self, kind: str, principal_id: str, min_level: Level) -> frozenset[str]:
        """Ids of `kind` the principal holds at `min_level` or above (bulk reader's thread)."""
        return frozenset(await self._db.read_column(_IDS, (principal_id, kind, int(min_level))))

    async def reconcile(self, live: Iterable[tuple[str, str]]) -> ReconcileResult:
        """Delete grants on resources of a kind in `live` that are absent from it.

        Grants written or refreshed since the database was opened (`last_seen_at`
        not before `Database.opened_at`) are kept. One transaction: on any error
        nothing is deleted.
        """
        opened_at = self._db.opened_at
        # Live ids grouped by kind, outside the write lock: the sets hold references to
        # the caller's strings, so this costs a hash table, not a copy of the world.
        by_kind: dict[str, set[str]] = {}
        count = 0
        for kind, rid in live:
            ids = by_kind.get(kind)
            if ids is None:
                ids = by_kind[kind] = set()
            ids.add(rid)
            count += 1

        async def work(conn: aiosqlite.Connection) -> ReconcileResult:
            # One ordered scan of each swept kind's primary-key range, in pages; only
            # the stale ids are kept, then deleted in key order. One transaction.
            stale: list[tuple[str, str, float]] = []
            for kind, ids in by_kind.items():
                cur = await conn.execute(_SWEEP_SCAN, (kind, opened_at))
                try:
                    while rows := await cur.fetchmany(_SWEEP_PAGE):
                        stale.extend((kind, r[0], opened_at) for r in rows if r[0] not in ids)
                finally:
                    await cur.close()
            removed = 0
            for start in range(0, len(stale), _SWEEP_PAGE):
                cur = await conn.executemany(_SWEEP_DELETE, stale[start : start + _SWEEP_PAGE])
                removed += cur.rowcount
                await cur.close()
            return ReconcileResult(kinds=frozenset(by_kind), live=count, removed=removed)

        return await self._db.transaction(work)

    async def iter_grants(
        self,
        *,
        kind: str | None = None,
        id: str | None = None,
        principal_id: str | None = None,
    ) -> AsyncIterator[Grant]:
        """Every grant matching the filters, in (kind, id, principal_id) order.

        Read in keyset pages of 1000 rows, so memory stays bounded however many match.
        """
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("kind", kind), ("id", id), ("principal_id", principal_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        clause = (" AND " + " AND ".join(where)) if where else ""
        after: tuple[str, str, str] = ("", "", "")
        while True:
            rows = await self._db.read_all(
                "SELECT kind, id, principal_id, level, granted_at, last_seen_at FROM grants "  # noqa: S608 (fixed column names)
                "WHERE (kind, id, principal_id) > (?, ?, ?)"
                f"{clause} ORDER BY kind, id, principal_id LIMIT {_PAGE}",
                (*after, *params),
            )
            for r in rows:
                yield Grant(r[0], r[1], r[2], Level(r[3]), r[4], r[5])
            if len(rows) < _PAGE:
                return
            last = rows[-1]
            after = (last[0], last[1], last[2])

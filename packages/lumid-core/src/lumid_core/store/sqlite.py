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
        now = time.time()
        await self._db.write(_UPSERT, (kind, id, principal_id, int(level), now, now))

    async def revoke(self, kind: str, id: str, principal_id: str) -> bool:
        async def work(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(
                "DELETE FROM grants WHERE kind = ? AND id = ? AND principal_id = ?",
                (kind, id, principal_id),
            )
            return cur.rowcount

        return await self._db.transaction(work) > 0

    async def delete_resource(self, kind: str, id: str) -> int:
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
        row = self._db.read_one(_LEVEL, (kind, id, principal_id))
        return None if row is None else Level(row[0])

    async def ids(self, kind: str, principal_id: str, min_level: Level) -> frozenset[str]:
        return frozenset(await self._db.read_column(_IDS, (principal_id, kind, int(min_level))))

    async def reconcile(self, live: Iterable[tuple[str, str]]) -> ReconcileResult:
        opened_at = self._db.opened_at
        db = self._db

        async def work(conn: aiosqlite.Connection) -> ReconcileResult:
            await conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS live_refs "
                "(kind TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID"
            )
            await conn.execute("DELETE FROM temp.live_refs")
            count = await db.executemany_streamed(
                conn, "INSERT OR IGNORE INTO temp.live_refs (kind, id) VALUES (?, ?)", live
            )
            cur = await conn.execute("SELECT DISTINCT kind FROM temp.live_refs")
            kinds = frozenset(str(r[0]) for r in await cur.fetchall())
            await cur.close()
            cur = await conn.execute(
                "DELETE FROM grants WHERE kind IN (SELECT kind FROM temp.live_refs) "
                "AND last_seen_at < ? AND NOT EXISTS (SELECT 1 FROM temp.live_refs AS l "
                "WHERE l.kind = grants.kind AND l.id = grants.id)",
                (opened_at,),
            )
            removed = cur.rowcount
            await conn.execute("DELETE FROM temp.live_refs")
            return ReconcileResult(kinds=kinds, live=count, removed=removed)

        return await self._db.transaction(work)

    async def iter_grants(
        self,
        *,
        kind: str | None = None,
        id: str | None = None,
        principal_id: str | None = None,
    ) -> AsyncIterator[Grant]:
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

"""Read-only access to the SQLite file: the `lumid` CLI's reading commands and `lumid doctor`.

`ReadOnlyDatabase` opens with a `mode=ro` URI: no migration, no WAL switch, never
the write lock, so it works on a read-only copy and never stalls a running server.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import aiosqlite

from . import legacy
from .db import Database
from .dbschema import DB_ENV_VAR, SCHEMA_VERSION, DatabaseError
from .dbthread import Params

__all__ = ["READ_ONLY_BUSY_TIMEOUT_MS", "ReadOnlyDatabase", "legacy_layout_problem"]

READ_ONLY_BUSY_TIMEOUT_MS: Final = 2000
"""A read-only reader waits at most this long (WAL readers never wait for a writer;
only a rollback-journal file being committed can make one wait)."""


def legacy_layout_problem(conn: sqlite3.Connection) -> str | None:
    """Why a file in an older layout cannot be read as it is, or None when it can.

    A lumid-plugins 0.2.x `acl_grants` table with rows in it (`lumid_core.legacy`)
    is migrated only by a writable open (the server's, or a writing `lumid`
    command's): until then those grants are not in `grants`, so a read would
    silently leave them out.
    """
    pending = legacy.status(conn).pending_rows
    if pending:
        return (
            f"holds {pending} grants in the lumid-plugins 0.2.x table "
            f"{legacy.LEGACY_TABLE} that are not migrated yet (the server migrates them "
            "on its next start, as does a writing command such as `lumid acl grant`); "
            "reading commands only read, see `lumid doctor` and docs/upgrading.md"
        )
    return None


def _read_only_uri(path: Path) -> str:
    """The read-only `file:` URI for `path`: `mode=ro`, plus `immutable=1` when needed.

    `immutable=1` is added on a read-only mount with no `-shm` file beside a WAL
    database (SQLite cannot create one there), as nothing can write it either.
    """
    from urllib.parse import quote

    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        probe = sqlite3.connect(uri, uri=True)
        try:
            probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            probe.close()
    except sqlite3.Error as exc:  # anything else: the caller's open reports it
        if "unable to open" in str(exc) and not os.access(path.parent, os.W_OK):
            return uri + "&immutable=1"
    return uri


def _check_read_only(
    path: Path, env_var: str, legacy_ok: bool = False
) -> tuple[int, frozenset[str]]:
    """(schema version, table names) of the file, opened read-only.

    Raises `DatabaseError` if it is missing, not a database, newer than this code or
    in a layout to migrate.
    """
    where = f"{env_var}={str(path)!r}"
    if not path.is_file():
        raise DatabaseError(
            f"{where}: no database there (the server creates it on its first start; check the path)"
        )
    try:
        conn = sqlite3.connect(_read_only_uri(path), uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise DatabaseError(f"{where}: cannot open the database read-only ({exc})") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {READ_ONLY_BUSY_TIMEOUT_MS}")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = frozenset(
            str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        )
        problem = None if legacy_ok else legacy_layout_problem(conn)
    except sqlite3.DatabaseError as exc:
        reason = str(exc)
        if "not a database" in reason:
            reason = "the file exists but is not a SQLite database"
        raise DatabaseError(f"{where}: cannot read it ({reason})") from None
    finally:
        conn.close()
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"{where}: schema version {version} is newer than this lumid-core understands "
            f"({SCHEMA_VERSION}); upgrade lumid-core"
        )
    if problem is not None:
        raise DatabaseError(f"{where}: {problem}")
    return version, tables


class ReadOnlyDatabase(Database):
    """A `Database` opened read-only: no migration, no WAL switch, no write lock ever.

    Opened with a `mode=ro` URI, so it works on a read-only mount, a `chmod 0444`
    snapshot or backup, and never contends with a server writing the same file.
    An older schema is read as it is: `schema_version` and `tables` say what is there.
    Every write method raises `DatabaseError`.
    """

    def __init__(
        self,
        path: Path,
        bulk: aiosqlite.Connection,
        point: sqlite3.Connection,
        *,
        schema_version: int,
        tables: frozenset[str],
        env_var: str,
    ) -> None:
        super().__init__(path, bulk, bulk, point, env_var=env_var)
        self.schema_version = schema_version
        self.tables = tables
        self._env_var = env_var

    @classmethod
    async def open_read_only(
        cls, path: Path | str, *, env_var: str = DB_ENV_VAR, legacy_ok: bool = False
    ) -> ReadOnlyDatabase:
        """Open the existing database at `path` read-only.

        Raises `DatabaseError` naming `env_var` when there is no database there, it is
        not one, its schema is newer than this code, or it needs a server-side migration
        before it can be read (`legacy_layout_problem`; `legacy_ok` reads it anyway, for
        a caller that reports the pending migration itself, as `lumid doctor` does).
        """
        path = Path(path).expanduser()
        version, tables = await asyncio.to_thread(_check_read_only, path, env_var, legacy_ok)
        uri = _read_only_uri(path)
        try:
            bulk = await aiosqlite.connect(uri, uri=True, isolation_level=None)
            point = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise DatabaseError(f"{env_var}={str(path)!r}: cannot open ({exc})") from None
        await bulk.execute(f"PRAGMA busy_timeout = {READ_ONLY_BUSY_TIMEOUT_MS}")
        point.execute(f"PRAGMA busy_timeout = {READ_ONLY_BUSY_TIMEOUT_MS}")
        return cls(path, bulk, point, schema_version=version, tables=tables, env_var=env_var)

    def require_table(self, table: str, what: str) -> None:
        """Raise `DatabaseError` when `table` (holding `what`) is not in this file yet."""
        if table not in self.tables:
            raise DatabaseError(
                f"{self._env_var}={str(self.path)!r}: schema v{self.schema_version} has no "
                f"{what} yet (the server adds it, migrating to v{SCHEMA_VERSION}, on its "
                "next start)"
            )

    def _refuse(self) -> DatabaseError:
        return DatabaseError(f"{self._env_var}={str(self.path)!r}: opened read-only")

    def write(self, sql: str, params: Params = ()) -> Awaitable[int]:
        """Refuse: always raises `DatabaseError` (opened read-only)."""
        raise self._refuse()

    async def transaction[T](self, work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Refuse: always raises `DatabaseError` (opened read-only); `work` never runs."""
        raise self._refuse()

    async def close(self) -> None:
        """Close the two reading connections (there is no writer); twice is a no-op."""
        if self._closed:
            return
        self._closed = True
        self._point.close()
        await self._bulk.close()

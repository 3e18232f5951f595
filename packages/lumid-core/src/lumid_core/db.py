"""The plugin's SQLite database: one file holding grants, principals and outboxes.

Three connections, each used for what it is fastest at:

- a *writer* (aiosqlite, its own thread) that applies writes in group commits:
  callers queue statements, one batch becomes one transaction and one fsync, and
  every caller's `await` returns only once its statement is durable;
- a *point reader* (plain sqlite3, used in the event loop) for single-row primary
  key lookups on the request path: a lookup costs tens of microseconds, less than
  the hop to a worker thread would, and in WAL mode it never waits for a writer and
  always sees the newest committed state, including other processes' commits;
- a *bulk reader* (aiosqlite, its own thread) for queries that return many rows.

WAL mode and a busy timeout keep other processes (the `lumid` CLI) safe to use the
same file while a server runs. A group commit is one hop to the writer's thread
(`dbthread.apply_batch` runs the whole transaction there); when SQLite already rolled back
(a full disk) the original error is reported, not the failed ROLLBACK. A server
opens with `watch=True`: it records (`dbfile`) the identity of the file it opened for `lumid
doctor` and logs an ERROR when the path stops naming that file (deleted, replaced).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Final

import aiosqlite

from . import legacy
from .dbfile import file_identity, write_server_record
from .dbthread import Params, apply_batch, first_column, rollback
from .errors import StoreError

__all__ = [
    "SCHEMA_VERSION",
    "Database",
    "DatabaseError",
    "ReadOnlyDatabase",
    "legacy_layout_problem",
]

log = logging.getLogger("lumid_core.db")

DB_ENV_VAR: Final = "LUMID_ACL_DB_PATH"
BUSY_TIMEOUT_MS: Final = 5000
POINT_BUSY_TIMEOUT_MS: Final = 1000
OPEN_BUSY_TIMEOUT_MS: Final = 30_000
"""How long a server's open (and migration, `wait_for_lock=True`) waits for another
process's write lock; the CLI's opens wait `BUSY_TIMEOUT_MS` like any write."""
IDENTITY_CHECK_SECONDS: Final = 5.0
"""How often a watched database checks that its file is still the one at its path."""


# Each entry migrates the schema from version i to i + 1. Append, never edit.
MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE grants (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        principal_id TEXT NOT NULL,
        level INTEGER NOT NULL,
        granted_at REAL NOT NULL,
        last_seen_at REAL NOT NULL,
        PRIMARY KEY (kind, id, principal_id)
    ) WITHOUT ROWID;
    CREATE INDEX grants_by_principal ON grants (principal_id, kind, level, id);
    CREATE TABLE principals (
        principal_id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        last_seen_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: durable outboxes (lumid_core.outbox) and resource -> parent links (a task's
    # workflow, remembered at register time for billing).
    """
    CREATE TABLE outbox (
        sink TEXT NOT NULL,
        key TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'held', 'delivered', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        hold_on TEXT,
        reason TEXT,
        payload TEXT NOT NULL,
        PRIMARY KEY (sink, key)
    ) WITHOUT ROWID;
    CREATE INDEX outbox_by_state ON outbox (sink, state, next_attempt_at);
    CREATE TABLE resource_parents (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        parent_kind TEXT NOT NULL,
        parent_id TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        PRIMARY KEY (kind, id, parent_kind)
    ) WITHOUT ROWID;
    """,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


class DatabaseError(StoreError):
    """The database cannot be opened or used; the message names LUMID_ACL_DB_PATH."""

    variable = DB_ENV_VAR


def _configure(conn: sqlite3.Connection, busy_ms: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")


def _prepare_file(
    path: Path, env_var: str, busy_ms: int = BUSY_TIMEOUT_MS
) -> legacy.Migrated | None:
    """Create the parent folder, check the file is a writable SQLite db, migrate it.

    Returns what was imported from a lumid-plugins 0.2.x table (`lumid_core.legacy`),
    or None. The migration runs before the switch to WAL: in the file's own journal
    mode a failed migration rolls back to the exact bytes it found.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(
            f"{env_var}={str(path)!r}: cannot create its folder ({exc.strerror or exc})"
        ) from None
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=busy_ms / 1000)
    except sqlite3.Error as exc:
        raise DatabaseError(f"{env_var}={str(path)!r}: cannot open the database ({exc})") from None
    try:
        _configure(conn, busy_ms)
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise DatabaseError(
                    f"{env_var}={str(path)!r}: schema version {version} is newer than this "
                    f"lumid-core understands ({SCHEMA_VERSION}); upgrade lumid-core"
                )
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            try:
                imported = legacy.migrate(conn)
            except legacy.LegacyDataError as exc:
                raise DatabaseError(
                    f"{env_var}={str(path)!r}: cannot migrate the lumid-plugins 0.2.x grants: "
                    f"{exc}; the file was left unchanged (docs/upgrading.md)"
                ) from None
            except sqlite3.Error as exc:
                raise DatabaseError(
                    f"{env_var}={str(path)!r}: migrating the lumid-plugins 0.2.x grants failed "
                    f"({exc}); the file was left unchanged"
                ) from None
            if version != SCHEMA_VERSION:  # an open with nothing to do writes nothing
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a trigger's RAISE(ROLLBACK) already ended it
                conn.execute("ROLLBACK")
            raise
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DatabaseError(
                f"{env_var}={str(path)!r}: the database cannot use WAL mode (got {mode!r})"
            )
        return imported
    except DatabaseError:
        raise
    except sqlite3.DatabaseError as exc:
        reason = str(exc)
        if "not a database" in reason:
            reason = "the file exists but is not a SQLite database"
        elif "locked" in reason or "busy" in reason:
            reason = (
                f"another process held the database's write lock for more than "
                f"{busy_ms / 1000:g} s ({exc}; a stopped `lumid acl import`?): "
                "resume or end it, then start again"
            )
        elif "readonly" in reason or "unable to open" in reason:
            reason = f"the database is not writable ({exc})"
        raise DatabaseError(f"{env_var}={str(path)!r}: {reason}") from None
    finally:
        conn.close()


def schema_version(path: Path) -> int:
    """The schema version stored in the file at `path` (0 for a new file)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


class _Write:
    __slots__ = ("future", "params", "sql")

    def __init__(self, sql: str, params: Params, future: asyncio.Future[int]) -> None:
        self.sql = sql
        self.params = params
        self.future = future


class Database:
    """An open plugin database. Create with `await Database.open(path)`."""

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        bulk: aiosqlite.Connection,
        point: sqlite3.Connection,
        *,
        env_var: str = DB_ENV_VAR,
    ) -> None:
        self.path = path
        self.env_var = env_var
        self.opened_at = time.time()
        self._writer = writer
        self._bulk = bulk
        self._point = point
        self._write_lock = asyncio.Lock()
        self._pending: list[_Write] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self.legacy_migration: legacy.Migrated | None = None
        """What this open imported from a lumid-plugins 0.2.x table, if anything."""
        self.identity = file_identity(path)
        """(device, inode) of the file opened; `check_file` compares the path with it."""
        self.file_problem: str | None = None
        """Set (and logged as an ERROR) once the file at `path` is not the one opened."""
        self._next_check = 0.0
        self._watcher: asyncio.Task[None] | None = None
        self._record: Path | None = None

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    @classmethod
    async def open(
        cls, path: Path | str, *, env_var: str = DB_ENV_VAR, watch: bool = False
    ) -> Database:
        """Open (creating and migrating as needed) the database at `path`.

        Raises `DatabaseError` naming `env_var` when the path is not usable, or when
        another process holds the write lock for more than the busy timeout.
        `watch=True` (a server): wait up to `OPEN_BUSY_TIMEOUT_MS` for another
        process's write lock (a start must not fail because a CLI holds it for a few
        seconds), record the opened file's identity for `lumid doctor` and check every
        `IDENTITY_CHECK_SECONDS` that the path still names it.
        """
        path = Path(path).expanduser()
        busy_ms = OPEN_BUSY_TIMEOUT_MS if watch else BUSY_TIMEOUT_MS
        imported = await asyncio.to_thread(_prepare_file, path, env_var, busy_ms)
        try:
            writer = await aiosqlite.connect(path, isolation_level=None)
            bulk = await aiosqlite.connect(path, isolation_level=None)
            point = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise DatabaseError(f"{env_var}={str(path)!r}: cannot open ({exc})") from None
        # FULL: a commit is on disk before `write` returns (durability per call).
        await writer.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await writer.execute("PRAGMA synchronous = FULL")
        await writer.execute("PRAGMA temp_store = FILE")
        await bulk.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _configure(point, POINT_BUSY_TIMEOUT_MS)
        db = cls(path, writer, bulk, point, env_var=env_var)
        db.legacy_migration = imported
        if watch:
            db._record = db._write_record()
            db._watcher = asyncio.create_task(db._watch(), name=f"lumid-db-watch:{path.name}")
        return db

    async def close(self) -> None:
        if self._closed:
            return
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._record is not None:
            with contextlib.suppress(OSError):
                self._record.unlink()
        self._point.close()
        await self._bulk.close()
        await self._writer.close()

    # -- the file under the path --------------------------------------------------

    def check_file(self) -> str | None:
        """Whether the path still names the file this database opened.

        Returns (and logs once as an ERROR naming the variable) what is wrong: the
        file was deleted or replaced under the running process, whose reads and
        writes then go to a file no other process (the `lumid` CLI) sees.
        """
        if self.file_problem is not None or self.identity is None:
            return self.file_problem
        now = file_identity(self.path)
        if now == self.identity:
            return None
        what = "deleted" if now is None else "replaced by another file"
        self.file_problem = (
            f"{self.env_var}={str(self.path)!r}: the database file was {what} while this "
            "process has it open: it keeps using the old file, which `lumid` commands "
            "and other servers no longer see; restore the file or restart this server"
        )
        log.error("%s", self.file_problem)
        return self.file_problem

    def _write_record(self) -> Path | None:
        if self.identity is None:
            return None
        return write_server_record(self.path, self.identity, self.opened_at, self.env_var)

    async def _watch(self) -> None:
        while self.file_problem is None:
            await asyncio.sleep(IDENTITY_CHECK_SECONDS)
            self.check_file()

    # -- reads --------------------------------------------------------------------

    def read_one(self, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        """Run a point query in the calling thread (the event loop): keep it tiny."""
        cursor = self._point.execute(sql, params)
        try:
            row: tuple[Any, ...] | None = cursor.fetchone()
        finally:
            # Reset the statement now so no read transaction (an old snapshot) stays open.
            cursor.close()
        return row

    async def read_all(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a query that may return many rows on the bulk reader's thread."""
        rows = await self._bulk.execute_fetchall(sql, params)
        return [tuple(row) for row in rows]

    async def read_column(self, sql: str, params: Params = ()) -> list[Any]:
        """First column of every row, fetched on the bulk reader's thread (one hop)."""
        conn = self._bulk._conn
        column: list[Any] = await self._bulk._execute(first_column, conn, sql, params)  # type: ignore[no-untyped-call]
        return column

    # -- writes -------------------------------------------------------------------

    def write(self, sql: str, params: Params = ()) -> Awaitable[int]:
        """Queue one statement for the next group commit; await it to know it is durable.

        The result is the statement's row count.
        """
        if self._closed:
            raise DatabaseError(f"{self.env_var}={str(self.path)!r}: database is closed")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(_Write(sql, params, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        return future

    async def _flush_loop(self) -> None:
        while self._pending:
            # Let every caller that is ready in this loop turn join the batch.
            await asyncio.sleep(0)
            batch, self._pending = self._pending, []
            async with self._write_lock:
                await self._apply(batch)

    async def _apply(self, batch: list[_Write]) -> None:
        """One transaction for the whole batch, in one hop to the writer's thread."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + 1.0
            self.check_file()
        stmts = [(w.sql, w.params) for w in batch]
        try:
            results = await self._on_writer(apply_batch, stmts)
        except BaseException as exc:  # cancellation, a closed connection: nobody landed
            for item in batch:
                self._fail(item.future, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                self._fail(item.future, result)
            elif not item.future.done():
                item.future.set_result(int(result))

    def _fail(self, future: asyncio.Future[int], exc: BaseException) -> None:
        if not future.done():
            if isinstance(exc, sqlite3.Error):
                future.set_exception(DatabaseError(f"{self.env_var}: write failed ({exc})"))
            else:
                future.set_exception(exc)

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE on the writer; never leaves a transaction open when it raises.

        BEGIN runs on the writer's thread, so a caller cancelled while it waits for the
        lock does not stop it: it may begin after all. The ROLLBACK queued behind it
        closes that transaction (and fails harmlessly when nothing began).
        """
        try:
            await self._writer.execute("BEGIN IMMEDIATE")
        except BaseException:
            with contextlib.suppress(Exception):
                await self._rollback()
            raise

    async def _on_writer[T](self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(sqlite3_connection, *args)` on the writer's thread: one hop, however
        many statements `fn` runs (aiosqlite's queue; its connection is only ever
        used from that thread)."""
        conn = self._writer._conn
        result: T = await self._writer._execute(fn, conn, *args)  # type: ignore[no-untyped-call]
        return result

    async def _rollback(self) -> None:
        """ROLLBACK on the writer's thread if a transaction is open; never raises
        sqlite's error (the caller's original error is the one to report)."""
        await self._on_writer(rollback)

    async def transaction[T](self, work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `work` in one IMMEDIATE transaction on the writer: all or nothing."""
        async with self._write_lock:
            self.check_file()
            await self._begin()
            try:
                result = await work(self._writer)
            except BaseException:
                await self._rollback()
                raise
            try:
                await self._writer.execute("COMMIT")
            except BaseException:
                await self._rollback()
                raise
            return result

    async def executemany_streamed(
        self, conn: aiosqlite.Connection, sql: str, rows: Iterable[Params], chunk: int = 10_000
    ) -> int:
        """Feed `rows` to `executemany` in bounded chunks (inside a transaction)."""
        total = 0
        buf: list[Params] = []
        for row in rows:
            buf.append(row)
            if len(buf) >= chunk:
                await conn.executemany(sql, buf)
                total += len(buf)
                buf = []
        if buf:
            await conn.executemany(sql, buf)
            total += len(buf)
        return total


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    """Fail `future` with `exc` (a sqlite3 error as a `DatabaseError`) unless done."""
    if not future.done():
        if isinstance(exc, sqlite3.Error):
            future.set_exception(DatabaseError(f"{DB_ENV_VAR}: write failed ({exc})"))
        else:
            future.set_exception(exc)


# -- read-only access (the `lumid` CLI's reading commands, `lumid doctor`) -------------

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
    """`mode=ro`; on a read-only mount with no `-shm` file beside a WAL database
    (SQLite cannot create one there) `immutable=1`, as nothing can write it either."""
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
    """(schema version, table names) of the file, opened read-only; `DatabaseError` if
    it is missing, not a database, newer than this code or in a layout to migrate."""
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
        raise self._refuse()

    async def transaction[T](self, work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        raise self._refuse()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._point.close()
        await self._bulk.close()

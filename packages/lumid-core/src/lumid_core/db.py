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
The schema and its migrations live in `dbschema`; read-only access in `dbreadonly`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Final

import aiosqlite

from . import legacy
from .dbfile import file_identity, write_server_record
from .dbschema import (
    BUSY_TIMEOUT_MS,
    DB_ENV_VAR,
    MIGRATIONS,
    SCHEMA_VERSION,
    DatabaseError,
    configure,
    prepare_file,
    schema_version,
)
from .dbthread import Params, apply_batch, first_column, rollback

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DB_ENV_VAR",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Database",
    "DatabaseError",
    "schema_version",
]

log = logging.getLogger("lumid_core.db")

POINT_BUSY_TIMEOUT_MS: Final = 1000
OPEN_BUSY_TIMEOUT_MS: Final = 30_000
"""How long a server's open (and migration, `wait_for_lock=True`) waits for another
process's write lock; the CLI's opens wait `BUSY_TIMEOUT_MS` like any write."""
IDENTITY_CHECK_SECONDS: Final = 5.0
"""How often a watched database checks that its file is still the one at its path."""


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
        imported = await asyncio.to_thread(prepare_file, path, env_var, busy_ms)
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
        configure(point, POINT_BUSY_TIMEOUT_MS)
        db = cls(path, writer, bulk, point, env_var=env_var)
        db.legacy_migration = imported
        if watch:
            db._record = db._write_record()
            db._watcher = asyncio.create_task(db._watch(), name=f"lumid-db-watch:{path.name}")
        return db

    async def close(self) -> None:
        """Wait for the pending group commit, then close all three connections.

        Also stops the file watcher and removes the server record (`dbfile`) a
        `watch=True` open wrote. Closing twice is a no-op.
        """
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
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append(_Write(sql, params, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_loop())
        return future

    async def _flush_loop(self) -> None:
        # The task's first step runs on the loop's next turn, ahead of the I/O that
        # turn brings in: every write queued in this turn (callers resumed together)
        # is in the first batch, and a lone write reaches the writer's thread at once.
        while self._pending:
            batch, self._pending = self._pending, []
            async with self._write_lock:
                await self._apply(batch)
            if self._pending:
                # Queued while that commit ran: let every caller that is ready in
                # this loop turn join the next batch (one transaction, one fsync).
                await asyncio.sleep(0)

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
        """Run `fn(sqlite3_connection, *args)` on the writer's thread.

        One hop, however many statements `fn` runs (aiosqlite's queue; its connection
        is only ever used from that thread).
        """
        conn = self._writer._conn
        result: T = await self._writer._execute(fn, conn, *args)  # type: ignore[no-untyped-call]
        return result

    async def _rollback(self) -> None:
        """ROLLBACK on the writer's thread if a transaction is open.

        Never raises sqlite's error (the caller's original error is the one to report).
        """
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

"""`lumid db copy`: move an installation's SQLite store to the shared PostgreSQL store.

Opens the SQLite file as the server would (migrating a lumid-plugins 0.2.x table
first), then reads it read-only (safe while a server runs) and merges every table
into PostgreSQL in one transaction, through COPY into temporary tables: grants
(never lowering a level; earliest grant, latest sighting), principals and parent
links (the newest wins), outbox rows (a key already there is left alone). Running it
twice copies nothing new. asyncpg is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ._database import add_db_option, locate_db, open_db
from ._errors import CliError

if TYPE_CHECKING:
    import asyncpg

__all__ = ["add_parser", "copy_sqlite_to_postgres"]

URL_VAR: Final = "LUMID_DATABASE_URL"


@dataclass(frozen=True)
class _Table:
    name: str
    target: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    conflict: str
    """The ON CONFLICT clause that makes the merge idempotent."""


_TABLES: Final = (
    _Table(
        "grants",
        "lumid_grants",
        ("kind", "id", "principal_id", "level", "granted_at", "last_seen_at"),
        (
            'text COLLATE "C"',
            'text COLLATE "C"',
            'text COLLATE "C"',
            "smallint",
            "float8",
            "float8",
        ),
        "ON CONFLICT (kind, id, principal_id) DO UPDATE SET "
        "level = GREATEST(t.level, excluded.level), "
        "granted_at = LEAST(t.granted_at, excluded.granted_at), "
        "last_seen_at = GREATEST(t.last_seen_at, excluded.last_seen_at)",
    ),
    _Table(
        "principals",
        "lumid_principals",
        ("principal_id", "email", "last_seen_at"),
        ('text COLLATE "C"', "text", "float8"),
        "ON CONFLICT (principal_id) DO UPDATE SET email = excluded.email, "
        "last_seen_at = excluded.last_seen_at WHERE excluded.last_seen_at > t.last_seen_at",
    ),
    _Table(
        "resource_parents",
        "lumid_resource_parents",
        ("kind", "id", "parent_kind", "parent_id", "recorded_at"),
        ('text COLLATE "C"', 'text COLLATE "C"', 'text COLLATE "C"', "text", "float8"),
        "ON CONFLICT (kind, id, parent_kind) DO UPDATE SET parent_id = excluded.parent_id, "
        "recorded_at = excluded.recorded_at WHERE excluded.recorded_at > t.recorded_at",
    ),
    _Table(
        "outbox",
        "lumid_outbox",
        (
            "sink",
            "key",
            "state",
            "attempts",
            "created_at",
            "updated_at",
            "next_attempt_at",
            "hold_on",
            "reason",
            "payload",
        ),
        (
            'text COLLATE "C"',
            'text COLLATE "C"',
            "text",
            "integer",
            "float8",
            "float8",
            "float8",
            "text",
            "text",
            "text",
        ),
        "ON CONFLICT (sink, key) DO NOTHING",
    ),
)


@dataclass(frozen=True)
class Copied:
    """One table's outcome: rows read from SQLite, and rows new in PostgreSQL."""

    table: str
    read: int
    new: int


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `lumid db ...`."""
    db = sub.add_parser("db", help="move the store between backends")
    cmds = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    copy = cmds.add_parser(
        "copy",
        help="copy the SQLite store into PostgreSQL (idempotent)",
        description="Copy grants, principals, parent links and the billing outbox from "
        "the SQLite file at LUMID_ACL_DB_PATH (or --db) into PostgreSQL. Safe to run "
        "again: nothing is copied twice and no level is lowered.",
    )
    copy.add_argument(
        "--to",
        metavar="URL",
        help=f"postgresql://user:password@host:port/db (default: ${URL_VAR}; prefer the "
        "variable: a password in an argument is visible to other local users)",
    )
    add_db_option(copy)
    copy.set_defaults(run=_copy)


def _rows(conn: sqlite3.Connection, table: _Table) -> Iterator[tuple[Any, ...]]:
    cur = conn.execute(f"SELECT {', '.join(table.columns)} FROM {table.name}")  # noqa: S608 (fixed names)
    while rows := cur.fetchmany(10_000):
        yield from rows


async def copy_sqlite_to_postgres(
    path: Path, url: str, *, source: str = "LUMID_ACL_DB_PATH", url_source: str = URL_VAR
) -> list[Copied]:
    """Merge the SQLite store at `path` into the PostgreSQL store at `url` (one transaction).

    `source` and `url_source` name where each came from, in error messages.
    """
    from lumid_core.pg import PgDatabase, PgStoreError

    try:
        sqlite = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        present = {
            str(r[0]) for r in sqlite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    except sqlite3.Error as exc:
        raise CliError(f"{source}={str(path)!r}: cannot read the database ({exc})") from None
    try:
        try:
            target = await PgDatabase.open(url, pool_size=1, env_var=url_source)
        except PgStoreError as exc:
            raise CliError(str(exc)) from None
        try:
            async with target.pool.acquire() as conn, conn.transaction():
                return [
                    await _copy_table(conn, sqlite, table)
                    for table in _TABLES
                    if table.name in present
                ]
        except sqlite3.Error as exc:
            raise CliError(f"{source}={str(path)!r}: cannot read the database ({exc})") from None
        except Exception as exc:
            raise CliError(str(target.error(exc, "the copy"))) from None
        finally:
            await target.close()
    finally:
        sqlite.close()


async def _copy_table(
    conn: asyncpg.pool.PoolConnectionProxy[Any], sqlite: sqlite3.Connection, table: _Table
) -> Copied:
    stage = f"lumid_copy_{table.name}"
    columns = ", ".join(table.columns)
    defs = ", ".join(f"{c} {t}" for c, t in zip(table.columns, table.types, strict=True))
    await conn.execute(f"CREATE TEMPORARY TABLE {stage} ({defs}) ON COMMIT DROP")
    await conn.copy_records_to_table(stage, records=_rows(sqlite, table), columns=table.columns)
    read = int(await conn.fetchval(f"SELECT count(*) FROM {stage}"))  # noqa: S608 (fixed names)
    before = int(await conn.fetchval(f"SELECT count(*) FROM {table.target}"))  # noqa: S608
    await conn.execute(
        f"INSERT INTO {table.target} AS t ({columns}) "  # noqa: S608 (fixed names)
        f"SELECT {columns} FROM {stage} {table.conflict}"
    )
    after = int(await conn.fetchval(f"SELECT count(*) FROM {table.target}"))  # noqa: S608
    return Copied(table.target.removeprefix("lumid_"), read, after - before)


async def _copy(args: argparse.Namespace) -> int:
    url = args.to if args.to is not None else os.environ.get(URL_VAR, "").strip()
    if not url:
        raise CliError(f"--to: no PostgreSQL URL given (and {URL_VAR} is unset)")
    if url.partition("://")[0].lower() not in ("postgresql", "postgres"):
        raise CliError(f"--to: must be a postgresql:// URL (got a {url.partition('://')[0]!r} URL)")
    where = locate_db(args.db)
    # Opened once as the server would: the schema is current and a lumid-plugins 0.2.x
    # table is migrated into `grants` (with a note) before anything is read.
    async with open_db(where, create=False):
        pass
    copied = await copy_sqlite_to_postgres(
        where.path, url, source=where.source, url_source="--to" if args.to else URL_VAR
    )
    from lumid_core.pg import redact

    print(f"copied {where.path} -> {redact(url)} (one transaction)")
    for c in copied:
        print(f"  {c.table:<17} {c.read:>9} read  {c.new:>9} new")
    return 0

"""Where the ACL database is (`--db`, `LUMID_ACL_DB_PATH`) and opening it for one command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from lumid_core.environ import DEFAULT_ACL_DB_PATH, env_setting

from ._errors import CliError

if TYPE_CHECKING:  # the database layer is imported when a command runs, not for --help
    from lumid_core.db import Database
    from lumid_core.dbreadonly import ReadOnlyDatabase

__all__ = ["DB_ENV_VAR", "DbLocation", "add_db_option", "locate_db", "open_db", "open_db_read_only"]

DB_ENV_VAR: Final = "LUMID_ACL_DB_PATH"

_TABLES: Final = {"grants": "grant table", "outbox": "billing outbox"}
"""The tables a read command may need, as its refusal names them."""


@dataclass(frozen=True)
class DbLocation:
    """The database file a command works on, and what chose it."""

    path: Path
    source: str
    """What chose the path, named in errors: `--db` or `LUMID_ACL_DB_PATH`."""


def _db_path(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("empty path")
    return value


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """Give `parser` the `--db PATH` option every database command takes."""
    parser.add_argument(
        "--db",
        metavar="PATH",
        type=_db_path,
        help=f"the ACL database (default: ${DB_ENV_VAR}, else {DEFAULT_ACL_DB_PATH})",
    )


def locate_db(override: str | None, environ: Mapping[str, str] = os.environ) -> DbLocation:
    """The database `override` (`--db`) or the environment chooses.

    `--db` wins, then `LUMID_ACL_DB_PATH` (read as the server reads it: any case,
    empty = unset), then the settings' default.
    """
    if override is not None:
        if not override.strip():
            raise CliError("--db: empty path")
        return DbLocation(Path(override).expanduser(), "--db")
    env = env_setting(DB_ENV_VAR, environ)
    if env is not None:
        return DbLocation(Path(env).expanduser(), DB_ENV_VAR)
    return DbLocation(DEFAULT_ACL_DB_PATH, DB_ENV_VAR)


@asynccontextmanager
async def open_db(where: DbLocation, *, create: bool) -> AsyncIterator[Database]:
    """The database opened like the server opens it (for writing), closed on leaving.

    With `create=False` it must already exist.

    Reading commands use `open_db_read_only` instead, and never create a file: an
    empty new database at a mistyped path would look like "no grants" instead of
    like the mistake it is.

    Raises:
        CliError: naming `where.source`, when the file is missing (`create=False`) or
            cannot be opened or migrated.
    """
    from lumid_core.db import Database, DatabaseError

    if not create and not where.path.is_file():
        raise CliError(
            f"{where.source}={str(where.path)!r}: no database there "
            "(the server creates it on its first start; check the path)"
        )
    try:
        db = await Database.open(where.path, env_var=where.source)
    except DatabaseError as exc:
        raise CliError(str(exc)) from None
    try:
        if (moved := db.legacy_migration) is not None:  # the server's migration, run here first
            print(
                f"lumid: note: migrated {moved.rows} grants from the lumid-plugins "
                f"{moved.layout} table acl_grants ({moved.added} new); the old table is kept "
                f"as {moved.archived_as}",
                file=sys.stderr,
            )
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def open_db_read_only(where: DbLocation, *, needs: str) -> AsyncIterator[ReadOnlyDatabase]:
    """The existing database opened read-only, closed on leaving.

    No migration, no write lock: works on a read-only copy and while a server writes.

    `needs` is the table the command reads ("grants" or "outbox"): an older schema
    without it is refused with a clear message.

    Raises:
        CliError: when the file cannot be opened read-only or lacks `needs`.
    """
    from lumid_core.db import DatabaseError
    from lumid_core.dbreadonly import ReadOnlyDatabase

    try:
        db = await ReadOnlyDatabase.open_read_only(where.path, env_var=where.source)
    except DatabaseError as exc:
        raise CliError(str(exc)) from None
    try:
        try:
            db.require_table(needs, _TABLES.get(needs, needs))
        except DatabaseError as exc:
            raise CliError(str(exc)) from None
        yield db
    finally:
        await db.close()

"""What every `lumid` command shares: the database location, errors, output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from lumid_core.environ import DEFAULT_ACL_DB_PATH, env_setting
from lumid_core.limits import MAX_ID_BYTES

if TYPE_CHECKING:
    from lumid_core.db import Database, ReadOnlyDatabase

__all__ = [
    "DB_ENV_VAR",
    "CliError",
    "DbLocation",
    "UsageError",
    "add_db_option",
    "emit_json",
    "id_problem",
    "identifier",
    "locate_db",
    "open_db",
    "open_db_read_only",
    "printable",
    "resource_id",
]

DB_ENV_VAR: Final = "LUMID_ACL_DB_PATH"


class CliError(Exception):
    """An operation failed: printed as `lumid: error: ...`, exit status 1."""


class UsageError(CliError):
    """A usage mistake found only when the command runs: exit status 2, like argparse's."""


@dataclass(frozen=True)
class DbLocation:
    path: Path
    source: str
    """What chose the path, named in errors: `--db` or `LUMID_ACL_DB_PATH`."""


def _db_path(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("empty path")
    return value


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        type=_db_path,
        help=f"the ACL database (default: ${DB_ENV_VAR}, else {DEFAULT_ACL_DB_PATH})",
    )


def locate_db(override: str | None, environ: Mapping[str, str] = os.environ) -> DbLocation:
    """`--db` wins, then `LUMID_ACL_DB_PATH` (read as the server reads it: any case,
    empty = unset), then the settings' default."""
    if override is not None:
        if not override.strip():
            raise CliError("--db: empty path")
        return DbLocation(Path(override).expanduser(), "--db")
    env = env_setting(DB_ENV_VAR, environ)
    if env is not None:
        return DbLocation(Path(env).expanduser(), DB_ENV_VAR)
    return DbLocation(DEFAULT_ACL_DB_PATH, DB_ENV_VAR)


async def open_db(where: DbLocation, *, create: bool) -> Database:
    """Open the database like the server does (for writing commands); with
    `create=False` it must already exist.

    Reading commands use `open_db_read_only` instead, and never create a file: an
    empty new database at a mistyped path would look like "no grants" instead of
    like the mistake it is.
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
    if (moved := db.legacy_migration) is not None:  # the server's migration, run here first
        print(
            f"lumid: note: migrated {moved.rows} grants from the lumid-plugins {moved.layout} "
            f"table acl_grants ({moved.added} new); the old table is kept as {moved.archived_as}",
            file=sys.stderr,
        )
    return db


async def open_db_read_only(where: DbLocation, *, needs: str | None = None) -> ReadOnlyDatabase:
    """Open the existing database read-only: no migration, no write lock, works on a
    read-only copy and while a server writes. `needs` = (table) the command reads,
    refused with a clear message when an older schema has none."""
    from lumid_core.db import DatabaseError, ReadOnlyDatabase

    try:
        db = await ReadOnlyDatabase.open_read_only(where.path, env_var=where.source)
    except DatabaseError as exc:
        raise CliError(str(exc)) from None
    if needs is not None:
        what = {"grants": "grant table", "outbox": "billing outbox"}.get(needs, needs)
        try:
            db.require_table(needs, what)
        except DatabaseError as exc:
            await db.close()
            raise CliError(str(exc)) from None
    return db


def emit_json(value: Any, out: TextIO | None = None) -> None:
    """One JSON document on one line."""
    (out or sys.stdout).write(json.dumps(value, sort_keys=True, separators=(",", ":")) + "\n")


def printable(text: str) -> str:
    """`text` with control and other unprintable characters escaped (ids and upstream
    reasons are printed to a terminal: an escape sequence must not act on it)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def id_problem(value: str, *, exact: bool = False) -> str | None:
    """Why `value` cannot be a kind, principal or (with `exact`) resource id, or None.

    One rule for `acl grant` and `acl import`, nothing is ever stripped (the store
    keeps ids exactly: stripping could rename one resource into another). A kind or
    principal with surrounding whitespace is refused; a resource id is taken exactly
    as given (hosts derive ids from user-chosen names such as "out.csv "). Anything
    longer than `MAX_ID_BYTES` is refused.
    """
    if not value:
        return "must not be empty"
    if not exact and value != value.strip():
        return "must not have leading or trailing whitespace (ids are kept exactly)"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: argv bytes that are not UTF-8
        return "is not valid text (it holds bytes that are not UTF-8)"
    if size > MAX_ID_BYTES:
        return f"is longer than {MAX_ID_BYTES} bytes"
    return None


def identifier(value: str) -> str:
    """argparse type for a kind, principal, email or key: `id_problem` as a usage error."""
    problem = id_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def resource_id(value: str) -> str:
    """argparse type for a resource id, taken exactly: `id_problem(exact=True)`."""
    problem = id_problem(value, exact=True)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value

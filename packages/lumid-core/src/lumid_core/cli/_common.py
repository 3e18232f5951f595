"""What every `lumid` command shares: the database location, errors, output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from lumid_core.db import DB_ENV_VAR, Database, DatabaseError
from lumid_core.settings import DEFAULT_ACL_DB_PATH

__all__ = ["CliError", "DbLocation", "add_db_option", "emit_json", "locate_db", "open_db"]


class CliError(Exception):
    """An operation failed: printed as `lumid: error: ...`, exit status 1."""


@dataclass(frozen=True)
class DbLocation:
    path: Path
    source: str
    """What chose the path, named in errors: `--db` or `LUMID_ACL_DB_PATH`."""


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        help=f"the ACL database (default: ${DB_ENV_VAR}, else {DEFAULT_ACL_DB_PATH})",
    )


def locate_db(override: str | None, environ: Mapping[str, str] = os.environ) -> DbLocation:
    """`--db` wins, then `LUMID_ACL_DB_PATH`, then the settings' default."""
    if override is not None:
        if not override.strip():
            raise CliError("--db: empty path")
        return DbLocation(Path(override).expanduser(), "--db")
    env = environ.get(DB_ENV_VAR, "").strip()
    if env:
        return DbLocation(Path(env).expanduser(), DB_ENV_VAR)
    return DbLocation(DEFAULT_ACL_DB_PATH, DB_ENV_VAR)


async def open_db(where: DbLocation, *, create: bool) -> Database:
    """Open the database like the server does; with `create=False` it must already exist.

    Reading commands refuse to create a file: an empty new database at a mistyped
    path would look like "no grants" instead of like the mistake it is.
    """
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


def emit_json(value: Any, out: TextIO | None = None) -> None:
    """One JSON document on one line."""
    (out or sys.stdout).write(json.dumps(value, sort_keys=True, separators=(",", ":")) + "\n")

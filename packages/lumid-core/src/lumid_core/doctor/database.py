"""The doctor's checks of the SQLite database file: creatable or open, identity, upgrade."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from pathlib import Path

from lumid_core import legacy
from lumid_core.db import SCHEMA_VERSION, Database, DatabaseError
from lumid_core.dbfile import file_identity, servers_dir
from lumid_core.dbreadonly import ReadOnlyDatabase

from .report import Check, Status

__all__ = ["check_database", "check_database_identity", "check_upgrade"]


def _creatable(path: Path, env_var: str) -> Check:
    """Whether the server could create the database at `path` (nothing is created)."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    where = f"{env_var}={str(path)!r}"
    if not folder.is_dir():
        return Check(
            "database",
            Status.FAIL,
            f"{where}: cannot create its folder ({folder} is a file)",
            env_var,
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        return Check(
            "database",
            Status.FAIL,
            f"{where}: cannot create its folder or file ({folder} is not writable)",
            env_var,
        )
    return Check(
        "database",
        Status.OK,
        f"{path}: not there yet; the server creates it (schema v{SCHEMA_VERSION}) on its "
        "first start",
        env_var,
    )


async def check_database(
    path: Path, *, env_var: str = "LUMID_ACL_DB_PATH"
) -> tuple[Check, Database | None]:
    """Check the ACL database without changing it: it is opened read-only.

    Read-only: no file created, no migration, no WAL switch, no lock a running
    server would wait for.

    Returns the read-only database for the other checks, or None when there is none.
    """
    path = path.expanduser()
    if not path.exists():
        if (gone := check_database_identity(path, env_var=env_var)) is not None:
            return gone, None  # deleted under a running server: not "not there yet"
        return _creatable(path, env_var), None
    try:
        db = await ReadOnlyDatabase.open_read_only(path, env_var=env_var, legacy_ok=True)
    except DatabaseError as exc:
        if (replaced := check_database_identity(path, env_var=env_var)) is not None:
            # e.g. "disk I/O error": the new file beside the old file's -wal / -shm
            detail = f"{replaced.detail}; opening it here fails too ({exc})"
            return Check("database", Status.FAIL, detail, env_var), None
        return Check("database", Status.FAIL, str(exc), env_var), None
    if (replaced := check_database_identity(path, env_var=env_var)) is not None:
        return replaced, db
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
        detail = f"{env_var}={str(path)!r}: readable but not writable (the server writes it)"
        return Check("database", Status.FAIL, detail, env_var), db
    if db.schema_version < SCHEMA_VERSION:
        detail = (
            f"{path}: writable, schema v{db.schema_version}; the server migrates it to "
            f"v{SCHEMA_VERSION} on its next start"
        )
    else:
        detail = f"{path}: writable, schema v{SCHEMA_VERSION} (current)"
    return Check("database", Status.OK, detail, env_var), db


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def check_database_identity(path: Path, *, env_var: str = "LUMID_ACL_DB_PATH") -> Check | None:
    """FAIL (or WARN) when a running server opened a file that `path` no longer names.

    Every server records the (device, inode) of the file it opened in
    `<db>.servers/<host>-<pid>.json` and removes the record when it stops. A record
    of a live process on this host whose identity differs from the file at `path`
    now means that server serves from a deleted or replaced file: FAIL. A record
    from another host cannot be checked for liveness: WARN. Records of dead
    processes on this host are stale (a crash) and ignored. None when all is well.
    """
    folder = servers_dir(path)
    try:
        records = sorted(folder.glob("*.json"))
    except OSError:
        return None
    now = file_identity(path)
    here = socket.gethostname()
    problems: list[tuple[Status, str]] = []
    for record in records:
        try:
            doc = json.loads(record.read_text(encoding="utf-8"))
            pid, host = int(doc["pid"]), str(doc["host"])
            opened = (int(doc["dev"]), int(doc["ino"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if opened == now:
            continue
        if host == here and not _alive(pid):
            continue  # a server that crashed without removing its record
        status = Status.FAIL if host == here else Status.WARN
        problems.append(
            (
                status,
                f"server pid {pid} on {host!r} opened a database file that {env_var}="
                f"{str(path)!r} no longer names (deleted or replaced since it started): it "
                "still grants and bills from the old file, which `lumid` commands do not "
                "see; restore the file or restart that server",
            )
        )
    if not problems:
        return None
    worst = Status.FAIL if any(s is Status.FAIL for s, _ in problems) else Status.WARN
    return Check("database", worst, "; ".join(d for _, d in problems), env_var)


def check_upgrade(path: Path, *, env_var: str = "LUMID_ACL_DB_PATH") -> Check | None:
    """What the file holds of lumid-plugins 0.2.x (read only); None when nothing.

    An unmigrated `acl_grants` is a WARN with its row count (the server migrates it
    at its next start) or a FAIL naming the first row that would stop that start;
    a past migration is an OK saying when, how many grants and where the old table is.
    """
    path = path.expanduser()
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None  # the database check already says why
    try:
        state = legacy.status(conn)
        if state.pending_rows is not None:
            try:
                for _ in legacy.read_rows(conn):
                    pass
            except legacy.LegacyDataError as exc:
                return Check(
                    "upgrade",
                    Status.FAIL,
                    f"{env_var}={str(path)!r}: the lumid-plugins 0.2.x table "
                    f"{legacy.LEGACY_TABLE} cannot be migrated: {exc} (docs/upgrading.md)",
                    env_var,
                )
            return Check(
                "upgrade",
                Status.WARN,
                f"{path}: unmigrated lumid-plugins {state.pending_layout} table "
                f"{legacy.LEGACY_TABLE} holds {state.pending_rows} grants; they are not in "
                "force until the server (or a writing lumid command) opens the file and "
                "migrates them",
                env_var,
            )
        if not state.migrations:
            return None
        parts = []
        for m in state.migrations:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m.migrated_at))
            kept = (
                f"old table kept as {m.archived_as}"
                if m.archive_present
                else f"old table {m.archived_as} since dropped"
            )
            parts.append(
                f"{m.rows} grants migrated from lumid-plugins {m.layout} at {when} "
                f"({m.added} new; {kept})"
            )
        return Check("upgrade", Status.OK, "; ".join(parts), env_var)
    except sqlite3.Error:
        return None  # unreadable: the database check reports it
    finally:
        conn.close()

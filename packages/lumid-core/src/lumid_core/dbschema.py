"""The SQLite file's schema: versioned migrations, applied when a server first opens it.

`prepare_file` creates the folder, checks the file is a writable SQLite database,
migrates it (a lumid-plugins 0.2.x table included, `lumid_core.legacy`) in one
transaction and switches it to WAL. A file whose schema is newer than this code is
refused, naming LUMID_ACL_DB_PATH.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from . import legacy
from .errors import StoreError

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DB_ENV_VAR",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DatabaseError",
    "configure",
    "prepare_file",
    "schema_version",
]

DB_ENV_VAR: Final = "LUMID_ACL_DB_PATH"
BUSY_TIMEOUT_MS: Final = 5000
"""How long a write (and a CLI's open) waits for another process's write lock."""


# Each entry migrates the schema from version i to i + 1, one statement per item
# (run in order inside the open's one transaction). Append, never edit.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE grants (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            principal_id TEXT NOT NULL,
            level INTEGER NOT NULL,
            granted_at REAL NOT NULL,
            last_seen_at REAL NOT NULL,
            PRIMARY KEY (kind, id, principal_id)
        ) WITHOUT ROWID
        """,
        """
        CREATE INDEX grants_by_principal ON grants (principal_id, kind, level, id)
        """,
        """
        CREATE TABLE principals (
            principal_id TEXT PRIMARY KEY,
            email TEXT NOT NULL,
            last_seen_at REAL NOT NULL
        ) WITHOUT ROWID
        """,
    ),
    # 2: durable outboxes (lumid_core.outbox) and resource -> parent links (a task's
    # workflow, remembered at register time for billing).
    (
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
        ) WITHOUT ROWID
        """,
        """
        CREATE INDEX outbox_by_state ON outbox (sink, state, next_attempt_at)
        """,
        """
        CREATE TABLE resource_parents (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            parent_kind TEXT NOT NULL,
            parent_id TEXT NOT NULL,
            recorded_at REAL NOT NULL,
            PRIMARY KEY (kind, id, parent_kind)
        ) WITHOUT ROWID
        """,
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


class DatabaseError(StoreError):
    """The database cannot be opened or used; the message names LUMID_ACL_DB_PATH."""

    variable = DB_ENV_VAR


def configure(conn: sqlite3.Connection, busy_ms: int) -> None:
    """Set a connection's busy timeout (milliseconds) and turn foreign keys on."""
    conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")


def prepare_file(
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
        configure(conn, busy_ms)
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise DatabaseError(
                    f"{env_var}={str(path)!r}: schema version {version} is newer than this "
                    f"lumid-core understands ({SCHEMA_VERSION}); upgrade lumid-core"
                )
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
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

"""Import of the grants lumid-plugins 0.2.x left in its `acl_grants` table.

0.2.x kept `acl_grants (kind, id, principal_id, level, granted_at[, last_seen_at])`:
levels 1 (READ) / 2 (WRITE), times as ISO-8601 text; 0.2.0 has no `last_seen_at`,
0.2.1 and later do. `migrate` copies every row into `grants` inside the caller's
migration transaction (`lumid_core.db` calls it on every open, so the plugins, the
`lumid` CLI and `lumid doctor` share this one code path), renames the old table to
`acl_grants_migrated_0_2` (kept for a rollback by hand) and records the migration
in `legacy_migrations`. `read_rows` and `status` only read: they work on a
read-only connection to a file that has not been migrated yet.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from .errors import LumidError

__all__ = [
    "ARCHIVE_TABLE",
    "LEGACY_TABLE",
    "RECORD_TABLE",
    "LegacyDataError",
    "LegacyGrant",
    "LegacyStatus",
    "Migrated",
    "MigrationRecord",
    "migrate",
    "read_rows",
    "status",
]

LEGACY_TABLE: Final = "acl_grants"
"""The table lumid-plugins 0.2.x keeps its grants in."""
LEGACY_INDEX: Final = "ix_acl_grants_principal_kind"
ARCHIVE_TABLE: Final = "acl_grants_migrated_0_2"
"""What `acl_grants` is renamed to once migrated (a second one gets `_2`, `_3`, ...)."""
RECORD_TABLE: Final = "legacy_migrations"
"""One row per migrated table: when, how many rows, where the old table went."""

_REQUIRED: Final = ("kind", "id", "principal_id", "level", "granted_at")
_LEVELS: Final = (1, 2)
_CHUNK: Final = 5000
_CLOCK_SKEW_SECONDS: Final = 86_400.0
_RECORD_DDL: Final = (
    f"CREATE TABLE IF NOT EXISTS {RECORD_TABLE} ("
    "archived_as TEXT PRIMARY KEY, source TEXT NOT NULL, layout TEXT NOT NULL, "
    "rows INTEGER NOT NULL, added INTEGER NOT NULL, migrated_at REAL NOT NULL"
    ") WITHOUT ROWID"
)
# Like `lumid acl import`: never lower a level, keep the earliest grant time and the
# latest sighting of a grant that is already there.
_UPSERT: Final = (
    "INSERT INTO grants (kind, id, principal_id, level, granted_at, last_seen_at) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (kind, id, principal_id) DO UPDATE SET "
    "level = max(level, excluded.level), granted_at = min(granted_at, excluded.granted_at), "
    "last_seen_at = max(last_seen_at, excluded.last_seen_at)"
)


class LegacyDataError(LumidError, ValueError):
    """A 0.2.x row (or the table itself) cannot be migrated; nothing was changed."""


@dataclass(frozen=True, slots=True)
class LegacyGrant:
    """One 0.2.x grant in the current representation (level 1/2, epoch seconds)."""

    kind: str
    id: str
    principal_id: str
    level: int
    granted_at: float
    last_seen_at: float


@dataclass(frozen=True, slots=True)
class Migrated:
    """What one `migrate` call did."""

    rows: int
    """0.2.x rows copied."""
    added: int
    """Of those, grants that were new (the others merged into existing ones)."""
    layout: str
    """`0.2.0` (no `last_seen_at`) or `0.2.1+`."""
    archived_as: str


@dataclass(frozen=True, slots=True)
class MigrationRecord:
    """A past migration, as recorded in `legacy_migrations`."""

    archived_as: str
    layout: str
    rows: int
    added: int
    migrated_at: float
    archive_present: bool


@dataclass(frozen=True, slots=True)
class LegacyStatus:
    """What a file holds of 0.2.x: an unmigrated table and / or past migrations."""

    pending_rows: int | None
    """Rows in an unmigrated `acl_grants`, or None when there is none."""
    pending_layout: str | None
    migrations: tuple[MigrationRecord, ...]


def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _layout(conn: sqlite3.Connection) -> tuple[str, bool]:
    columns = {str(r[1]) for r in conn.execute(f"PRAGMA table_info({LEGACY_TABLE})")}
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise LegacyDataError(
            f"table {LEGACY_TABLE} is not a lumid-plugins 0.2.x grant table (no column "
            f"{', '.join(missing)}); rename or drop it"
        )
    has_seen = "last_seen_at" in columns
    return ("0.2.1+" if has_seen else "0.2.0"), has_seen


def _time(value: object, column: str, now: float) -> float:
    if not isinstance(value, str):
        raise ValueError(f"{column} {value!r} is not ISO-8601 text")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{column} {value!r} is not an ISO-8601 time") from None
    if parsed.tzinfo is None:  # SQLite's own datetime() text: UTC by convention
        parsed = parsed.replace(tzinfo=UTC)
    ts = parsed.timestamp()
    if not math.isfinite(ts) or ts < 0 or ts > now + _CLOCK_SKEW_SECONDS:
        raise ValueError(f"{column} {value!r} is before 1970 or in the future")
    # Never later than the migration: a migrated grant is swept by the next
    # reconcile like any grant not seen since the server started.
    return min(ts, now)


def read_rows(conn: sqlite3.Connection, *, now: float | None = None) -> Iterator[LegacyGrant]:
    """Every 0.2.x grant in `(kind, id, principal_id)` order, converted and checked.

    Only reads (a read-only connection will do). Raises `LegacyDataError` naming the
    first bad row's key, or when there is no `acl_grants` table of the 0.2.x shape.
    """
    if not _table_exists(conn, LEGACY_TABLE):
        raise LegacyDataError(f"no table {LEGACY_TABLE}")
    _, has_seen = _layout(conn)
    now = time.time() if now is None else now
    seen = "last_seen_at" if has_seen else "granted_at"
    cur = conn.execute(
        f"SELECT kind, id, principal_id, level, granted_at, {seen} FROM {LEGACY_TABLE} "  # noqa: S608 (fixed names)
        "ORDER BY kind, id, principal_id"
    )
    try:
        while rows := cur.fetchmany(_CHUNK):
            for kind, rid, principal, level, granted, last in rows:
                try:
                    for column, value in (("kind", kind), ("id", rid), ("principal_id", principal)):
                        if not isinstance(value, str):
                            raise ValueError(f"{column} is {value!r}, not text")
                    if isinstance(level, bool) or level not in _LEVELS:
                        raise ValueError(f"level {level!r} is neither 1 (read) nor 2 (write)")
                    granted_at = _time(granted, "granted_at", now)
                    last_seen_at = _time(last, seen, now)
                except ValueError as exc:
                    raise LegacyDataError(
                        f"row (kind={kind!r}, id={rid!r}, principal_id={principal!r}): {exc}"
                    ) from None
                yield LegacyGrant(kind, rid, principal, int(level), granted_at, last_seen_at)
    finally:
        cur.close()


def _archive_name(conn: sqlite3.Connection) -> str:
    """The first free archive name: no table, index or earlier record uses it."""
    recorded = _table_exists(conn, RECORD_TABLE)
    name, n = ARCHIVE_TABLE, 1
    while (
        _table_exists(conn, name)
        or conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = ?", (f"ix_{name}_principal_kind",)
        ).fetchone()
        or (
            recorded
            and conn.execute(
                f"SELECT 1 FROM {RECORD_TABLE} WHERE archived_as = ?",  # noqa: S608 (fixed name)
                (name,),
            ).fetchone()
        )
    ):
        n += 1
        name = f"{ARCHIVE_TABLE}_{n}"
    return name


def migrate(conn: sqlite3.Connection) -> Migrated | None:
    """Copy a 0.2.x `acl_grants` into `grants`, archive it; None when there is none.

    Runs inside the caller's open write transaction, after the schema migrations
    (so `grants` exists): any exception leaves it to the caller to roll back, which
    undoes everything. Raises `LegacyDataError` on a bad row (naming its key) and
    `sqlite3.Error` when SQLite fails.
    """
    if not _table_exists(conn, LEGACY_TABLE):
        return None
    layout, _ = _layout(conn)
    now = time.time()
    before = int(conn.execute("SELECT count(*) FROM grants").fetchone()[0])
    count = 0
    batch: list[tuple[str, str, str, int, float, float]] = []
    for g in read_rows(conn, now=now):
        batch.append((g.kind, g.id, g.principal_id, g.level, g.granted_at, g.last_seen_at))
        if len(batch) >= _CHUNK:
            conn.executemany(_UPSERT, batch)
            count += len(batch)
            batch = []
    if batch:
        conn.executemany(_UPSERT, batch)
        count += len(batch)
    added = int(conn.execute("SELECT count(*) FROM grants").fetchone()[0]) - before
    archived = _archive_name(conn)
    conn.execute(f"ALTER TABLE {LEGACY_TABLE} RENAME TO {archived}")
    # The index keeps its name through a rename: give it one that a 0.2.x started
    # again (creating a fresh acl_grants and its index) can never collide with.
    if conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (LEGACY_INDEX,)
    ).fetchone():
        conn.execute(f"DROP INDEX {LEGACY_INDEX}")
        conn.execute(
            f"CREATE INDEX ix_{archived}_principal_kind ON {archived} (principal_id, kind)"
        )
    conn.execute(_RECORD_DDL)
    conn.execute(
        f"INSERT INTO {RECORD_TABLE} (archived_as, source, layout, rows, added, migrated_at) "  # noqa: S608 (fixed names)
        "VALUES (?, ?, ?, ?, ?, ?)",
        (archived, LEGACY_TABLE, layout, count, added, now),
    )
    return Migrated(rows=count, added=added, layout=layout, archived_as=archived)


def status(conn: sqlite3.Connection) -> LegacyStatus:
    """What the file holds of 0.2.x, read only (no row is parsed; see `read_rows`)."""
    pending: int | None = None
    pending_layout: str | None = None
    if _table_exists(conn, LEGACY_TABLE):
        pending = int(conn.execute(f"SELECT count(*) FROM {LEGACY_TABLE}").fetchone()[0])  # noqa: S608 (fixed name)
        try:
            pending_layout, _ = _layout(conn)
        except LegacyDataError:
            pending_layout = None
    records: list[MigrationRecord] = []
    if _table_exists(conn, RECORD_TABLE):
        for archived, layout, rows, added, at in conn.execute(
            f"SELECT archived_as, layout, rows, added, migrated_at FROM {RECORD_TABLE} "  # noqa: S608 (fixed name)
            "ORDER BY migrated_at"
        ):
            records.append(
                MigrationRecord(
                    archived,
                    layout,
                    int(rows),
                    int(added),
                    float(at),
                    _table_exists(conn, archived),
                )
            )
    return LegacyStatus(pending, pending_layout, tuple(records))

"""ACL databases as lumid-plugins 0.2.x left them, built from its documented facts.

0.2.x kept `acl_grants (kind, id, principal_id, level INTEGER, granted_at TEXT,
PRIMARY KEY (kind, id, principal_id))` and the index `ix_acl_grants_principal_kind
(principal_id, kind)`; 0.2.1 and later add `last_seen_at TEXT NOT NULL`. Levels are
1 (READ) / 2 (WRITE); times are `datetime.now(UTC).isoformat()` text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

__all__ = ["LegacyRow", "iso", "write_legacy_db"]

type LegacyRow = tuple[str, str, str, object, object, object]
"""(kind, id, principal_id, level, granted_at, last_seen_at); last_seen_at is
ignored for the 0.2.0 layout. Levels and times are written as given (so a test
can write bad ones)."""


def iso(ts: float) -> str:
    """A time as 0.2.x wrote it: `datetime.now(UTC).isoformat()` style."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def write_legacy_db(
    path: Path,
    rows: Iterable[LegacyRow],
    *,
    layout: Literal["0.2.0", "0.2.1"] = "0.2.1",
) -> None:
    """Create (or add to) the 0.2.x table at `path` in the file's current journal mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        seen = ", last_seen_at TEXT NOT NULL" if layout == "0.2.1" else ""
        conn.execute(
            "CREATE TABLE IF NOT EXISTS acl_grants (kind TEXT, id TEXT, principal_id TEXT, "
            f"level INTEGER, granted_at TEXT{seen}, "
            "PRIMARY KEY (kind, id, principal_id))"
        )
        conn.execute(
            "CREATE INDEX IF NOT EXISTS ix_acl_grants_principal_kind "
            "ON acl_grants (principal_id, kind)"
        )
        if layout == "0.2.1":
            conn.executemany(
                "INSERT INTO acl_grants (kind, id, principal_id, level, granted_at, last_seen_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                list(rows),
            )
        else:
            conn.executemany(
                "INSERT INTO acl_grants (kind, id, principal_id, level, granted_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [r[:5] for r in rows],
            )
        conn.commit()
    finally:
        conn.close()

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

__all__ = ["FLOWMESH_BLOCK", "LUMILAKE_BLOCK", "LegacyRow", "dotenv", "iso", "write_legacy_db"]

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


# The env blocks of the 0.2.x README (its FlowMesh and Lumilake "Loading" sections,
# with the variables of its table), URLs and secrets left as {placeholders}.
FLOWMESH_BLOCK = """
FLOWMESH_PLUGINS=lumid_flowmesh_plugin
LUM_ID_BASE_URL={lumid}
RUNMESH_BILLING_BASE_URL={runmesh}
FLOWMESH_BRIDGE_SECRET={secret}
LUMID_BALANCE_GUARD=on
LUMID_ORG_ID=lumid
LUMID_ACL_DB_PATH={db}
"""

LUMILAKE_BLOCK = """
LUMILAKE_PLUGINS=lumid_lumilake_plugin
LUM_ID_BASE_URL={lumid}
LUMID_ORG_ID=lumid
LUMILAKE_REQUIRE_IDENTITY_PROVIDER=1
LUMID_ACL_DB_PATH={db}
LUMILAKE_REMOTE_OPTIMIZER_URL={optimizer}
LUMILAKE_OPTIMIZER_TYPE=halo-greedy
# Required if the remote auth-gates GET /api/v1/optimizer.
LUMILAKE_RUNTIME_TOKEN={token}
"""


def dotenv(text: str, **values: str) -> dict[str, str]:
    """KEY=VALUE lines; blanks and # comments skipped (what docker's --env-file reads)."""
    env: dict[str, str] = {}
    for line in text.format(**values).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def flowmesh_block(*, lumid: str, runmesh: str, secret: str, db: str) -> dict[str, str]:
    """The 0.2.x FlowMesh env block with these URLs, bridge secret and database path."""
    return dotenv(FLOWMESH_BLOCK, lumid=lumid, runmesh=runmesh, secret=secret, db=db)


def lumilake_block(*, lumid: str, db: str, optimizer: str, token: str) -> dict[str, str]:
    """The 0.2.x Lumilake env block with these URLs, database path and runtime token."""
    return dotenv(LUMILAKE_BLOCK, lumid=lumid, db=db, optimizer=optimizer, token=token)

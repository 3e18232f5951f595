"""The PostgreSQL store's versioned schema and its migration under an advisory lock."""

from __future__ import annotations

from typing import Any, Final

import asyncpg

type Conn = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

__all__ = ["MIGRATIONS", "MIGRATION_LOCK", "SCHEMA_VERSION", "SchemaTooNew", "migrate", "version"]

# Advisory lock keys (one 64-bit namespace per job; "lumid" in ASCII, then a tag).
MIGRATION_LOCK: Final = 0x6C756D6964_01
RECONCILE_LOCK: Final = 0x6C756D6964_02

# Text columns are `COLLATE "C"`: byte order, the same order SQLite lists rows in.
# Each entry migrates the schema from version i to i + 1. Append, never edit.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE lumid_grants (
            kind text COLLATE "C" NOT NULL,
            id text COLLATE "C" NOT NULL,
            principal_id text COLLATE "C" NOT NULL,
            level smallint NOT NULL,
            granted_at double precision NOT NULL,
            last_seen_at double precision NOT NULL,
            PRIMARY KEY (kind, id, principal_id)
        )""",
        "CREATE INDEX lumid_grants_by_principal ON lumid_grants (principal_id, kind, level, id)",
        """CREATE TABLE lumid_principals (
            principal_id text COLLATE "C" PRIMARY KEY,
            email text NOT NULL,
            last_seen_at double precision NOT NULL
        )""",
        """CREATE TABLE lumid_resource_parents (
            kind text COLLATE "C" NOT NULL,
            id text COLLATE "C" NOT NULL,
            parent_kind text COLLATE "C" NOT NULL,
            parent_id text NOT NULL,
            recorded_at double precision NOT NULL,
            PRIMARY KEY (kind, id, parent_kind)
        )""",
        """CREATE TABLE lumid_outbox (
            sink text COLLATE "C" NOT NULL,
            key text COLLATE "C" NOT NULL,
            state text NOT NULL CHECK (state IN ('pending', 'held', 'delivered', 'dead')),
            attempts integer NOT NULL DEFAULT 0,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            next_attempt_at double precision NOT NULL,
            hold_on text,
            reason text,
            payload text NOT NULL,
            claimed_by text,
            lease_until double precision NOT NULL DEFAULT 0,
            PRIMARY KEY (sink, key)
        )""",
        "CREATE INDEX lumid_outbox_due ON lumid_outbox (sink, next_attempt_at) "
        "WHERE state = 'pending'",
        "CREATE INDEX lumid_outbox_held ON lumid_outbox (sink, hold_on) WHERE state = 'held'",
        "CREATE INDEX lumid_outbox_next ON lumid_outbox "
        "(sink, (GREATEST(next_attempt_at, lease_until))) WHERE state = 'pending'",
        "CREATE INDEX lumid_outbox_by_state ON lumid_outbox (sink, state, created_at)",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_VERSION_TABLE: Final = "lumid_schema_version"


class SchemaTooNew(Exception):
    """The database's schema is newer than this lumid-core understands."""

    def __init__(self, found: int) -> None:
        super().__init__(found)
        self.found = found


async def version(conn: Conn) -> int:
    """The schema version recorded in the database (0 when it holds no lumid schema)."""
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", _VERSION_TABLE)
    if not exists:
        return 0
    found = await conn.fetchval(f"SELECT max(version) FROM {_VERSION_TABLE}")  # noqa: S608 (constant)
    return int(found or 0)


async def migrate(conn: Conn) -> int:
    """Bring the schema to `SCHEMA_VERSION` once, whoever else starts at the same time.

    A read at the current version takes no lock and needs no write permission; a
    migration runs in one transaction under a transaction-level advisory lock, so
    replicas starting together migrate once. Raises `SchemaTooNew`.
    """
    current = await version(conn)
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(current)
    if current == SCHEMA_VERSION:
        return current
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_VERSION_TABLE} "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await version(conn)
        if current > SCHEMA_VERSION:
            raise SchemaTooNew(current)
        for step in range(current, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                await conn.execute(statement)
            await conn.execute(f"INSERT INTO {_VERSION_TABLE} (version) VALUES ($1)", step + 1)  # noqa: S608 (constant)
    return SCHEMA_VERSION

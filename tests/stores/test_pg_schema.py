"""PostgreSQL schema migrations: versioned, once under concurrency, newer refused."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from lumid_core.pg import SCHEMA_VERSION, PgDatabase, PgStoreError


async def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    opened = await asyncio.gather(*(PgDatabase.open(pg_url, pool_size=1) for _ in range(6)))
    try:
        conn = await asyncpg.connect(pg_url)
        try:
            versions = [r[0] for r in await conn.fetch("SELECT version FROM lumid_schema_version")]
            tables = await conn.fetchval(
                "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'lumid\\_%'"
            )
        finally:
            await conn.close()
        assert versions == list(range(1, SCHEMA_VERSION + 1))
        assert tables == 5
    finally:
        for db in opened:
            await db.close()


async def test_a_newer_schema_is_refused_with_the_variable_and_no_password(pg_url: str) -> None:
    await (await PgDatabase.open(pg_url, pool_size=1)).close()
    conn = await asyncpg.connect(pg_url)
    await conn.execute("INSERT INTO lumid_schema_version (version) VALUES ($1)", SCHEMA_VERSION + 1)
    await conn.close()
    with pytest.raises(PgStoreError) as refused:
        await PgDatabase.open(pg_url, pool_size=1)
    message = str(refused.value)
    assert message.startswith("LUMID_DATABASE_URL=postgresql://***@127.0.0.1:")
    assert f"schema version {SCHEMA_VERSION + 1} is newer" in message
    assert "upgrade lumid-core" in message
    password = pg_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in message
    assert password not in repr(refused.value)

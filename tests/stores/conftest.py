"""Both store backends behind one fixture: the contract suite runs unchanged on each."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from lumid_core import Database, SqliteGrantStore
from lumid_core.directory import PrincipalDirectory, SqlitePrincipalDirectory
from lumid_core.outbox import Outbox
from lumid_core.pg import (
    PgDatabase,
    PgGrantStore,
    PgOutbox,
    PgParentLinks,
    PgPrincipalDirectory,
)
from lumid_core.store.base import GrantStore
from lumid_core.store.parents import ParentLinks, SqliteParentLinks


@dataclass
class Stores:
    """One open backend: its stores and a way to inject a fault into grant deletion."""

    grants: GrantStore
    directory: PrincipalDirectory
    parents: ParentLinks
    close: Callable[[], Awaitable[None]]
    break_delete_of: Callable[[str], Awaitable[None]]
    outbox: Callable[[str], Outbox | PgOutbox]
    import_grants: Callable[[Any], Awaitable[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.import_grants = self.grants.import_grants  # type: ignore[attr-defined]


@dataclass
class Backend:
    """Opens stores on one database; every open after the first is a fresh `opened_at`."""

    name: str
    open: Callable[[], Awaitable[Stores]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    opened: list[Stores] = []
    if request.param == "sqlite":
        path = tmp_path / "lumid_acl.sqlite"

        async def break_sqlite(rid: str) -> None:
            conn = sqlite3.connect(path)
            conn.execute(
                "CREATE TRIGGER boom BEFORE DELETE ON grants WHEN old.id = "
                f"'{rid}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
            conn.commit()
            conn.close()

        async def open_sqlite() -> Stores:
            db = await Database.open(path)
            stores = Stores(
                SqliteGrantStore(db),
                SqlitePrincipalDirectory(db),
                SqliteParentLinks(db),
                db.close,
                break_sqlite,
                lambda sink: Outbox(db, sink),
            )
            opened.append(stores)
            return stores

        yield Backend("sqlite", open_sqlite)
    else:
        url: str = request.getfixturevalue("pg_url")

        async def break_pg(rid: str) -> None:
            conn = await asyncpg.connect(url)
            await conn.execute(
                "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF old.id = '{rid}' THEN RAISE EXCEPTION 'injected failure'; END IF; "
                "RETURN old; END $$"
            )
            await conn.execute(
                "CREATE TRIGGER boom BEFORE DELETE ON lumid_grants "
                "FOR EACH ROW EXECUTE FUNCTION boom()"
            )
            await conn.close()

        async def open_pg() -> Stores:
            pg = await PgDatabase.open(url, pool_size=4)
            stores = Stores(
                PgGrantStore(pg),
                PgPrincipalDirectory(pg),
                PgParentLinks(pg),
                pg.close,
                break_pg,
                lambda sink: PgOutbox(pg, sink, lease_seconds=2.0),
            )
            opened.append(stores)
            return stores

        yield Backend("postgresql", open_pg)
    for stores in opened:
        await stores.close()

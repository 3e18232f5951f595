"""Which store a `lumid` command uses: `--db` (SQLite), else LUMID_DATABASE_URL, else SQLite.

The PostgreSQL driver is imported only when LUMID_DATABASE_URL selects it, and the
database layer only when a command runs (not for `--help`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ._database import locate_db, open_db, open_db_read_only
from ._errors import CliError

if TYPE_CHECKING:
    from lumid_core.db import Database
    from lumid_core.outbox import Outbox
    from lumid_core.pg import PgDatabase, PgGrantStore, PgOutbox
    from lumid_core.store import SqliteGrantStore

__all__ = ["grant_store_of", "known_sinks", "open_store", "outbox_of", "principals_by_email"]

URL_VAR = "LUMID_DATABASE_URL"


@asynccontextmanager
async def open_store(
    db_override: str | None,
    *,
    create: bool = False,
    read_only: bool = False,
    needs: str = "grants",
) -> AsyncIterator[Database | PgDatabase]:
    """The store the server uses, open for the block and closed on leaving.

    That is the shared PostgreSQL when LUMID_DATABASE_URL is set and `--db` is not
    given, else the SQLite file: read-only when `read_only` (a file lacking table
    `needs` is refused), and required to exist unless `create`.
    """
    url = os.environ.get(URL_VAR, "").strip()
    if db_override is not None or not url:
        where = locate_db(db_override)
        if read_only:
            async with open_db_read_only(where, needs=needs) as ro:
                yield ro
        else:
            async with open_db(where, create=create) as db:
                yield db
        return
    from lumid_core.pg import PgDatabase, PgStoreError

    try:
        pg = await PgDatabase.open(url, pool_size=2)
    except PgStoreError as exc:
        raise CliError(str(exc)) from None
    try:
        yield pg
    finally:
        await pg.close()


def outbox_of(store: Database | PgDatabase, sink: str) -> Outbox | PgOutbox:
    """The outbox of `sink` on `store`."""
    from lumid_core.db import Database

    if isinstance(store, Database):
        from lumid_core.outbox import Outbox

        return Outbox(store, sink)
    from lumid_core.pg import PgOutbox

    return PgOutbox(store, sink)


async def known_sinks(store: Database | PgDatabase) -> list[str]:
    """Every sink that has ever queued a row, sorted."""
    from lumid_core.db import Database

    if isinstance(store, Database):
        column = await store.read_column("SELECT DISTINCT sink FROM outbox ORDER BY 1")
        return [str(s) for s in column]
    rows = await store.pool.fetch("SELECT DISTINCT sink FROM lumid_outbox ORDER BY 1")
    return [str(r[0]) for r in rows]


def grant_store_of(store: Database | PgDatabase) -> SqliteGrantStore | PgGrantStore:
    """The grant store on `store`."""
    from lumid_core.db import Database

    if isinstance(store, Database):
        from lumid_core.store import SqliteGrantStore

        return SqliteGrantStore(store)
    from lumid_core.pg import PgGrantStore

    return PgGrantStore(store)


async def principals_by_email(store: Database | PgDatabase, email: str) -> list[str]:
    """The principal ids identity recorded with `email` (case-insensitive), sorted."""
    from lumid_core.db import Database

    if isinstance(store, Database):
        column = await store.read_column(
            "SELECT principal_id FROM principals WHERE email = ? COLLATE NOCASE ORDER BY 1",
            (email,),
        )
        return [str(s) for s in column]
    rows = await store.pool.fetch(
        "SELECT principal_id FROM lumid_principals WHERE lower(email) = lower($1) ORDER BY 1",
        email,
    )
    return [str(r[0]) for r in rows]

"""`lumid acl import`: grants written in short bounded batches, each retried in halves if slow.

Short transactions with a pause between them: a running server's writes
(registrations) wait at most one batch, never the whole import. A batch that holds
the write lock past `IMPORT_TRANSACTION_SECONDS` is rolled back and retried as two
halves (an upsert is idempotent, so importing the same file again is safe).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from lumid_core.store.base import Grant

from ._backend import grant_store_of, open_store
from ._database import locate_db
from ._errors import CliError
from ._grant_lines import read_grants
from ._kinds import check_kind

if TYPE_CHECKING:  # the database layer is imported when a command runs, not for --help
    from lumid_core.pg import PgGrantStore
    from lumid_core.store import SqliteGrantStore
__all__ = [
    "IMPORT_CHUNK",
    "IMPORT_PAUSE_SECONDS",
    "IMPORT_TRANSACTION_SECONDS",
    "import_batch",
    "run_import",
]

IMPORT_CHUNK = 1000
"""Grants per import transaction: about 10 ms of write lock each."""
IMPORT_PAUSE_SECONDS = 0.02
"""Pause between import transactions, so the server's writer gets its turn."""
IMPORT_TRANSACTION_SECONDS = 1.0
"""The longest one import transaction may take (lock wait included): past it, it is
rolled back and the batch retried at half the size."""

_LANDED = "(importing the same file again is safe)"


async def import_batch(store: SqliteGrantStore | PgGrantStore, batch: list[Grant]) -> int:
    """Import `batch` in transactions bounded by IMPORT_TRANSACTION_SECONDS.

    One that runs longer is rolled back and its half-batches retried (an upsert is
    idempotent); returns how many grants were written.

    Raises:
        CliError: when a single grant cannot be written within the bound.
    """
    import asyncio

    try:
        return await asyncio.wait_for(store.import_grants(batch), IMPORT_TRANSACTION_SECONDS)
    except TimeoutError:
        if len(batch) == 1:
            raise CliError(
                f"one grant could not be written within {IMPORT_TRANSACTION_SECONDS:g}s "
                "(is another process holding the database's write lock?)"
            ) from None
    print(
        f"lumid acl import: a batch of {len(batch)} grants took over "
        f"{IMPORT_TRANSACTION_SECONDS:g}s (the database is busy); rolled back, retrying in "
        "halves",
        file=sys.stderr,
    )
    half = len(batch) // 2
    first = await import_batch(store, batch[:half])
    await asyncio.sleep(IMPORT_PAUSE_SECONDS)
    return first + await import_batch(store, batch[half:])


async def run_import(args: argparse.Namespace) -> int:
    """`lumid acl import`: validate the whole file, then write it batch by batch.

    On a failure or Ctrl-C it says how many grants were imported before it.
    """
    import asyncio
    import sqlite3

    from lumid_core.errors import StoreError

    grants, source = read_grants(args.file)
    if not args.any_kind:
        for kind in sorted({g.kind for g in grants}):
            try:
                check_kind(kind)
            except CliError as exc:
                raise CliError(f"{source}: {exc}; nothing imported") from None
    where = locate_db(args.db)
    count = 0
    async with open_store(args.db, create=True) as db:
        store = grant_store_of(db)
        shown = db.path
        try:
            for start in range(0, len(grants), IMPORT_CHUNK):
                if start:
                    await asyncio.sleep(IMPORT_PAUSE_SECONDS)
                count += await import_batch(store, grants[start : start + IMPORT_CHUNK])
        except asyncio.CancelledError:  # Ctrl-C: say how far it got, then stop
            print(
                f"lumid acl import: interrupted; {count} of {len(grants)} grants were imported "
                f"before it {_LANDED}",
                file=sys.stderr,
            )
            raise
        except StoreError as exc:
            raise CliError(
                f"{exc}; {count} of {len(grants)} grants were imported before it {_LANDED}"
            ) from None
        except sqlite3.Error as exc:
            raise CliError(
                f"{where.source}={str(where.path)!r}: import failed ({exc}); {count} of "
                f"{len(grants)} grants were imported before it {_LANDED}"
            ) from None
        except CliError as exc:
            raise CliError(
                f"{exc}; {count} of {len(grants)} grants were imported before it {_LANDED}"
            ) from None
    print(f"imported {count} grants from {source} into {shown}")
    return 0

"""What `lumid billing status|ls|retry` do once their arguments are parsed."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from ._backend import known_sinks, open_store, outbox_of
from ._errors import CliError
from ._output import age, emit_json, iso_time, print_table, printable

if TYPE_CHECKING:  # the database layer is imported when a command runs, not for --help
    from lumid_core.db import Database
    from lumid_core.outbox import OutboxEntry
    from lumid_core.pg import PgDatabase

__all__ = ["ls", "retry", "status"]


async def _sinks(db: Database | PgDatabase, only: str | None) -> list[str]:
    """Every sink that has queued a row, or just `only`, which must be one of them.

    A typo would otherwise show an empty outbox.
    """
    known = await known_sinks(db)
    if only is None or only in known:
        return known if only is None else [only]
    if not known:
        return []  # nothing queued yet under any name: the empty outbox says so
    raise CliError(
        f"--sink {printable(only)!r}: no such outbox sink (known: "
        f"{', '.join(printable(k) for k in known)})"
    )


async def status(args: argparse.Namespace) -> int:
    """`lumid billing status`: counts per state and the oldest pending age, per sink."""
    async with open_store(args.db, read_only=True, needs="outbox") as db:
        stats = {sink: await outbox_of(db, sink).stats() for sink in await _sinks(db, args.sink)}
    if args.json:
        emit_json(
            {
                sink: {
                    "pending": s.pending,
                    "held": s.held,
                    "delivered": s.delivered,
                    "dead": s.dead,
                    "oldest_pending_age_seconds": s.oldest_pending_age_seconds,
                }
                for sink, s in stats.items()
            }
        )
        return 0
    if not stats:
        print("the outbox is empty: no usage row has been queued yet")
        return 0
    print_table(
        ("SINK", "PENDING", "HELD", "DELIVERED", "DEAD", "OLDEST PENDING"),
        [
            (
                printable(sink),
                str(s.pending),
                str(s.held),
                str(s.delivered),
                str(s.dead),
                age(s.oldest_pending_age_seconds),
            )
            for sink, s in stats.items()
        ],
    )
    return 0


def _entry_json(e: OutboxEntry) -> dict[str, Any]:
    return {
        "sink": e.sink,
        "key": e.key,
        "state": e.state,
        "attempts": e.attempts,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
        "reason": e.reason,
        "hold_on": e.hold_on,
        "payload": e.payload,
    }


async def ls(args: argparse.Namespace) -> int:
    """`lumid billing ls`: outbox rows, oldest first, as a table or JSON lines."""
    state: str | None = "dead" if args.dead else args.state
    entries: list[OutboxEntry] = []
    async with open_store(args.db, read_only=True, needs="outbox") as db:
        for sink in await _sinks(db, args.sink):
            entries += await outbox_of(db, sink).entries(state=state, limit=args.limit)
    entries.sort(key=lambda e: (e.created_at, e.sink, e.key))
    entries = entries[: args.limit]
    if args.json:
        for e in entries:
            emit_json(_entry_json(e))
        return 0
    if not entries:
        print(f"no {state or 'outbox'} rows", file=sys.stderr)
        return 0
    now = time.time()
    print_table(
        ("SINK", "KEY", "STATE", "ATTEMPTS", "QUEUED", "AGE", "REASON"),
        [
            (
                printable(e.sink),
                printable(e.key),
                e.state,
                str(e.attempts),
                iso_time(e.created_at),
                age(now - e.created_at),
                printable((e.reason or "-").replace("\n", " "))[:120],
            )
            for e in entries
        ],
    )
    return 0


async def retry(args: argparse.Namespace) -> int:
    """`lumid billing retry`: move one dead letter (`--task`) or all back to pending."""
    moved = 0
    states: list[str] = []
    async with open_store(args.db, create=False) as db:
        for sink in await _sinks(db, args.sink):
            outbox = outbox_of(db, sink)
            if args.all_dead:
                moved += await outbox.retry(all_dead=True)
            else:
                moved += await outbox.retry(key=args.task)
                if moved == 0:
                    found = await outbox.entry(args.task)
                    if found is not None:
                        states.append(f"{sink}: {found.state}")
    if args.all_dead:
        print(f"{moved} dead letters queued for delivery again" if moved else "no dead letters")
        return 0
    if moved == 0:
        if states:
            raise CliError(
                f"{printable(args.task)!r} is not a dead letter ({'; '.join(states)}); "
                "nothing to retry"
            )
        raise CliError(f"no outbox row has the key {printable(args.task)!r}")
    print(f"{printable(args.task)} queued for delivery again")
    return 0

"""`lumid billing`: the durable usage outbox (pending, held, delivered, dead letters).

Every sink that has ever queued a row is shown unless `--sink` picks one. Retrying
moves dead letters back to pending; the server's delivery task sends them (the
bridge is idempotent on the key, so a replay never charges twice).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # the database layer is imported when a command runs, not for --help
    from lumid_core.db import Database
    from lumid_core.outbox import OutboxEntry
    from lumid_core.pg import PgDatabase

from ._backend import known_sinks, open_store, outbox_of
from ._common import (
    CliError,
    add_db_option,
    emit_json,
    identifier,
    printable,
)

__all__ = ["add_parser"]

STATES: Final = ("pending", "held", "delivered", "dead")
"""`lumid_core.outbox.STATES`, spelled out so `--help` needs no database layer."""

MAX_LIMIT = 1_000_000
"""The most rows `billing ls --limit` lists (SQLite's LIMIT is a 64-bit integer)."""


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {printable(value)!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    if number > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_LIMIT}")
    return number


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    billing = sub.add_parser(
        "billing",
        help="inspect and replay the billing outbox",
        description="Usage rows wait in a durable outbox in the ACL database until the "
        "billing bridge accepts them. Safe to use while the server runs.",
    )

    def common(p: argparse.ArgumentParser) -> None:
        add_db_option(p)
        p.add_argument(
            "--sink", type=identifier, help="only this outbox sink (default: every sink)"
        )

    cmds = billing.add_subparsers(dest="billing_command", required=True, metavar="COMMAND")

    status = cmds.add_parser("status", help="counts per state and the oldest pending age")
    status.add_argument("--json", action="store_true", help="one JSON document")
    common(status)
    status.set_defaults(run=_status)

    ls = cmds.add_parser("ls", help="list outbox rows (oldest first)")
    which = ls.add_mutually_exclusive_group()
    which.add_argument("--dead", action="store_true", help="dead letters only")
    which.add_argument("--state", choices=STATES, help="rows in this state only")
    ls.add_argument("--limit", type=_positive, default=100, help="at most this many (100)")
    ls.add_argument("--json", action="store_true", help="JSON lines, with the payloads")
    common(ls)
    ls.set_defaults(run=_ls)

    retry = cmds.add_parser("retry", help="send dead letters again")
    what = retry.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--task", metavar="ID", type=identifier, help="the dead letter with this key (a task id)"
    )
    what.add_argument("--all-dead", action="store_true", help="every dead letter")
    common(retry)
    retry.set_defaults(run=_retry)


async def _sinks(db: Database | PgDatabase, only: str | None) -> list[str]:
    """Every sink that has queued a row, or just `only`, which must be one of them
    (a typo would otherwise show an empty outbox)."""
    known = await known_sinks(db)
    if only is None or only in known:
        return known if only is None else [only]
    if not known:
        return []  # nothing queued yet under any name: the empty outbox says so
    raise CliError(
        f"--sink {printable(only)!r}: no such outbox sink (known: "
        f"{', '.join(printable(k) for k in known)})"
    )


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


async def _status(args: argparse.Namespace) -> int:
    db = await open_store(args.db, read_only=True, needs="outbox")
    try:
        stats = {sink: await outbox_of(db, sink).stats() for sink in await _sinks(db, args.sink)}
    finally:
        await db.close()
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
    _table(
        ("SINK", "PENDING", "HELD", "DELIVERED", "DEAD", "OLDEST PENDING"),
        [
            (
                printable(sink),
                str(s.pending),
                str(s.held),
                str(s.delivered),
                str(s.dead),
                _age(s.oldest_pending_age_seconds),
            )
            for sink, s in stats.items()
        ],
    )
    return 0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


async def _ls(args: argparse.Namespace) -> int:
    state: str | None = "dead" if args.dead else args.state
    db = await open_store(args.db, read_only=True, needs="outbox")
    try:
        entries: list[OutboxEntry] = []
        for sink in await _sinks(db, args.sink):
            entries += await outbox_of(db, sink).entries(state=state, limit=args.limit)
    finally:
        await db.close()
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
    _table(
        ("SINK", "KEY", "STATE", "ATTEMPTS", "QUEUED", "AGE", "REASON"),
        [
            (
                printable(e.sink),
                printable(e.key),
                e.state,
                str(e.attempts),
                _iso(e.created_at),
                _age(now - e.created_at),
                printable((e.reason or "-").replace("\n", " "))[:120],
            )
            for e in entries
        ],
    )
    return 0


async def _retry(args: argparse.Namespace) -> int:
    db = await open_store(args.db)
    try:
        sinks = await _sinks(db, args.sink)
        moved = 0
        states: list[str] = []
        for sink in sinks:
            outbox = outbox_of(db, sink)
            if args.all_dead:
                moved += await outbox.retry(all_dead=True)
            else:
                moved += await outbox.retry(key=args.task)
                if moved == 0:
                    found = await outbox.entry(args.task)
                    if found is not None:
                        states.append(f"{sink}: {found.state}")
    finally:
        await db.close()
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

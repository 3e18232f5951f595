"""What `lumid acl ls|grant|revoke|export` do once their arguments are parsed."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Final

from lumid_core.store.base import Level

from ._backend import grant_store_of, open_store, principals_by_email
from ._errors import CliError
from ._grant_lines import grant_json
from ._kinds import check_kind
from ._output import Table, emit_json, iso_time, printable

if TYPE_CHECKING:  # the database layer is imported when a command runs, not for --help
    from lumid_core.db import Database
    from lumid_core.pg import PgDatabase

__all__ = ["export", "grant", "ls", "revoke"]

_LS_HEADER: Final = ("KIND", "ID", "PRINCIPAL", "LEVEL", "GRANTED")
_LS_SIZING_ROWS: Final = 1000
"""Column widths come from the first rows; the rest stream out (a store may be huge)."""


async def _principal(db: Database | PgDatabase, args: argparse.Namespace) -> str | None:
    """`--principal`, or the sub that identity recorded for `--email` (exactly one)."""
    if args.email is None:
        principal: str | None = args.principal
        return principal
    subs = await principals_by_email(db, args.email)
    if not subs:
        raise CliError(
            f"--email {args.email!r}: no principal with that email has used this server yet "
            "(identity records emails as tokens are resolved); give --principal <lum.id sub>"
        )
    if len(subs) > 1:
        raise CliError(
            f"--email {args.email!r} matches several principals ({', '.join(subs)}); "
            "give --principal"
        )
    return subs[0]


def _who(args: argparse.Namespace, principal: str) -> str:
    return principal if args.email is None else f"{principal} ({args.email})"


async def _filters(db: Database | PgDatabase, args: argparse.Namespace) -> dict[str, str | None]:
    return {"kind": args.kind, "id": args.id, "principal_id": await _principal(db, args)}


async def ls(args: argparse.Namespace) -> int:
    """`lumid acl ls`: the matching grants as a table (read-only)."""
    table = Table(_LS_HEADER, sizing_rows=_LS_SIZING_ROWS)
    async with open_store(args.db, read_only=True, needs="grants") as db:
        async for g in grant_store_of(db).iter_grants(**await _filters(db, args)):
            table.add(
                (
                    printable(g.kind),
                    printable(g.id),
                    printable(g.principal_id),
                    g.level.name.lower(),
                    iso_time(g.granted_at),
                )
            )
    if table.rows == 0:
        print("no grants match", file=sys.stderr)
    table.finish()
    return 0


async def grant(args: argparse.Namespace) -> int:
    """`lumid acl grant`: give a principal a level on one resource (never lowering one)."""
    level = Level.parse(args.level)
    if not args.any_kind:
        check_kind(args.kind)
    async with open_store(args.db, create=True) as db:
        principal = await _principal(db, args)
        assert principal is not None  # argparse requires --principal or --email
        store = grant_store_of(db)
        await store.grant(args.kind, args.id, principal, level)
        held = await store.level(args.kind, args.id, principal)
    who = _who(args, principal)
    if held is None:  # pragma: no cover - the upsert just wrote it
        raise CliError(f"the grant of {args.kind} {args.id!r} to {who} did not land")
    what = f"{args.kind} {args.id!r}"
    if held > level:
        print(
            f"{who} already holds {held.name.lower()} on {what}; kept "
            f"(a grant never lowers a level: revoke, then grant {level.name.lower()})"
        )
    else:
        print(f"granted {held.name.lower()} on {what} to {who}")
    return 0


async def revoke(args: argparse.Namespace) -> int:
    """`lumid acl revoke`: remove a principal's grant on one resource."""
    async with open_store(args.db, create=False) as db:
        principal = await _principal(db, args)
        assert principal is not None  # argparse requires --principal or --email
        removed = await grant_store_of(db).revoke(args.kind, args.id, principal)
    what = f"{args.kind} {args.id!r}"
    who = _who(args, principal)
    if not removed:
        raise CliError(f"{who} holds no grant on {what}; nothing revoked")
    print(f"revoked {who}'s grant on {what}")
    return 0


async def export(args: argparse.Namespace) -> int:
    """`lumid acl export`: the matching grants as JSON lines on standard output."""
    count = 0
    async with open_store(args.db, read_only=True, needs="grants") as db:
        async for g in grant_store_of(db).iter_grants(**await _filters(db, args)):
            emit_json(grant_json(g), sort_keys=False)
            count += 1
    print(f"exported {count} grants", file=sys.stderr)
    return 0

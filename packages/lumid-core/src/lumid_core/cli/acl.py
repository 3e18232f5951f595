"""`lumid acl`: list, grant, revoke, export and import grants.

Safe while a server uses the same file: `ls` and `export` open it read-only (no
lock, no migration: they work on a read-only copy too), every write is a short
IMMEDIATE transaction under a busy timeout (an import commits in small batches,
each rolled back and retried smaller if it holds the lock past a deadline), and the
server reads grants from the file on every check (no grant cache), so a change is
in force as soon as the command returns.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from lumid_core.hosts import installed_hosts
from lumid_core.store.base import Grant, Level

from ._common import (
    CliError,
    add_db_option,
    id_problem,
    identifier,
    locate_db,
    printable,
    resource_id,
)

if TYPE_CHECKING:  # the database layer is imported when a command runs, not for --help
    from lumid_core.db import Database
    from lumid_core.pg import PgDatabase, PgGrantStore
    from lumid_core.store import SqliteGrantStore

from ._backend import grant_store_of, open_store, principals_by_email

__all__ = ["add_parser"]

_LEVELS = ("read", "write")
IMPORT_CHUNK = 1000
"""Grants per import transaction: about 10 ms of write lock each."""
IMPORT_PAUSE_SECONDS = 0.02
"""Pause between import transactions, so the server's writer gets its turn."""
IMPORT_TRANSACTION_SECONDS = 1.0
"""The longest one import transaction may take (lock wait included): past it, it is
rolled back and the batch retried at half the size."""

_name = identifier


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    acl = sub.add_parser(
        "acl",
        help="look at and change grants in the ACL database",
        description="Grants say which principal (a lum.id `sub`) may read or write one "
        "resource. Safe to use while the server runs on the same database.",
    )
    cmds = acl.add_subparsers(dest="acl_command", required=True, metavar="COMMAND")

    def filters(p: argparse.ArgumentParser) -> None:
        who = p.add_mutually_exclusive_group()
        who.add_argument("--principal", type=_name, help="only this principal (a lum.id sub)")
        who.add_argument("--email", type=_name, help="only the principal with this email")
        p.add_argument("--kind", type=_name, help="only this resource kind (workflow, job, ...)")
        p.add_argument("--id", type=resource_id, help="only this resource id (exactly)")

    ls = cmds.add_parser("ls", help="list grants (a table)")
    filters(ls)
    add_db_option(ls)
    ls.set_defaults(run=_ls)

    def target(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--kind", type=_name, required=True, help="resource kind (workflow, job, ...)"
        )
        p.add_argument("--id", type=resource_id, required=True, help="resource id (taken exactly)")
        who = p.add_mutually_exclusive_group(required=True)
        who.add_argument("--principal", type=_name, help="a lum.id sub")
        who.add_argument(
            "--email",
            type=_name,
            help="the principal with this email (known once they have used this server)",
        )

    grant = cmds.add_parser("grant", help="give a principal read or write on one resource")
    target(grant)
    grant.add_argument("--level", choices=_LEVELS, required=True)
    grant.add_argument(
        "--any-kind",
        action="store_true",
        help="grant even if no installed plugin uses --kind (default: refuse, it is a typo)",
    )
    add_db_option(grant)
    grant.set_defaults(run=_grant)

    revoke = cmds.add_parser("revoke", help="remove a principal's grant on one resource")
    target(revoke)
    add_db_option(revoke)
    revoke.set_defaults(run=_revoke)

    export = cmds.add_parser("export", help="write grants as JSON lines to standard output")
    filters(export)
    add_db_option(export)
    export.set_defaults(run=_export)

    imp = cmds.add_parser(
        "import",
        help="add grants from JSON lines (as `export` writes them); all lines are "
        "validated before any is written",
    )
    imp.add_argument(
        "file", nargs="?", default="-", help="a JSON-lines file, or - for standard input (default)"
    )
    imp.add_argument(
        "--any-kind",
        action="store_true",
        help="import kinds no installed plugin uses (default: refuse the file, it is a typo)",
    )
    add_db_option(imp)
    imp.set_defaults(run=_import)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
            f"--email {args.email!r} matches several principals ({', '.join(map(str, subs))}); "
            "give --principal"
        )
    return str(subs[0])


def _who(args: argparse.Namespace, principal: str) -> str:
    return principal if args.email is None else f"{principal} ({args.email})"


async def _filters(db: Database | PgDatabase, args: argparse.Namespace) -> dict[str, str | None]:
    return {"kind": args.kind, "id": args.id, "principal_id": await _principal(db, args)}


_printable = printable


_LS_HEADER: Final = ("KIND", "ID", "PRINCIPAL", "LEVEL", "GRANTED")
_LS_SIZING_ROWS: Final = 1000
"""Column widths come from the first rows; the rest stream out (a store may be huge)."""


async def _ls(args: argparse.Namespace) -> int:

    db = await open_store(args.db, read_only=True, needs="grants")
    widths: list[int] | None = None
    first: list[tuple[str, ...]] = []
    shown = 0

    def emit(row: tuple[str, ...]) -> None:
        assert widths is not None
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())

    def size_and_flush() -> None:
        nonlocal widths
        widths = [max(len(r[i]) for r in (_LS_HEADER, *first)) for i in range(len(_LS_HEADER))]
        for row in (_LS_HEADER, *first):
            emit(row)
        first.clear()

    try:
        async for g in grant_store_of(db).iter_grants(**await _filters(db, args)):
            row = (
                _printable(g.kind),
                _printable(g.id),
                _printable(g.principal_id),
                g.level.name.lower(),
                _iso(g.granted_at),
            )
            shown += 1
            if widths is not None:
                emit(row)
                continue
            first.append(row)
            if len(first) >= _LS_SIZING_ROWS:
                size_and_flush()
    finally:
        await db.close()
    if shown == 0:
        print("no grants match", file=sys.stderr)
    elif widths is None:
        size_and_flush()
    return 0


def check_kind(kind: str) -> None:
    """Refuse a kind no installed host plugin checks grants on (a typo grants nothing).

    Without any host plugin installed there is nothing to check against.
    """
    from lumid_core.doctor import load_host_doctor  # imports the plugins: only here

    grantable: dict[str, list[str]] = {}
    owned: dict[str, tuple[str, str]] = {}
    for host in sorted(installed_hosts()):
        try:
            policy = load_host_doctor(host).policy
        except Exception as exc:  # a broken plugin: `lumid doctor` says more
            print(f"lumid: note: the {host} plugin did not load ({exc})", file=sys.stderr)
            continue
        for k in policy.kinds:
            if k in policy.owner_kinds:
                owned.setdefault(k, (host, policy.owner_kinds[k]))
            else:
                grantable.setdefault(k, []).append(host)
    if not grantable or kind in grantable:
        return
    if kind in owned:
        host, owner = owned[kind]
        raise CliError(
            f"{host} checks a {kind} against the {owner} grant of the same id: "
            f"grant --kind {owner} instead"
        )
    raise CliError(
        f"no installed plugin checks grants of kind {kind!r} "
        f"(known: {', '.join(sorted(grantable))}); pass --any-kind to grant it anyway"
    )


async def _grant(args: argparse.Namespace) -> int:

    level = Level.parse(args.level)
    if not args.any_kind:
        check_kind(args.kind)
    db = await open_store(args.db, create=True)
    try:
        principal = await _principal(db, args)
        assert principal is not None  # argparse requires --principal or --email
        store = grant_store_of(db)
        await store.grant(args.kind, args.id, principal, level)
        held = await store.level(args.kind, args.id, principal)
    finally:
        await db.close()
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


async def _revoke(args: argparse.Namespace) -> int:

    db = await open_store(args.db)
    try:
        principal = await _principal(db, args)
        assert principal is not None  # argparse requires --principal or --email
        removed = await grant_store_of(db).revoke(args.kind, args.id, principal)
    finally:
        await db.close()
    what = f"{args.kind} {args.id!r}"
    who = _who(args, principal)
    if not removed:
        raise CliError(f"{who} holds no grant on {what}; nothing revoked")
    print(f"revoked {who}'s grant on {what}")
    return 0


def _grant_json(g: Grant) -> dict[str, Any]:
    return {
        "kind": g.kind,
        "id": g.id,
        "principal_id": g.principal_id,
        "level": g.level.name.lower(),
        "granted_at": g.granted_at,
        "last_seen_at": g.last_seen_at,
    }


async def _export(args: argparse.Namespace) -> int:

    db = await open_store(args.db, read_only=True, needs="grants")
    count = 0
    try:
        async for g in grant_store_of(db).iter_grants(**await _filters(db, args)):
            sys.stdout.write(json.dumps(_grant_json(g), separators=(",", ":")) + "\n")
            count += 1
    finally:
        await db.close()
    print(f"exported {count} grants", file=sys.stderr)
    return 0


def _field(obj: dict[str, Any], key: str, where: str, *, exact: bool = False) -> str:
    """An id field, under the same rule as `acl grant`'s options (`id_problem`)."""
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise CliError(f"{where}: {key!r} must be a non-empty string")
    problem = id_problem(value, exact=exact)
    if problem is not None:
        raise CliError(f"{where}: {key!r} {problem}")
    return value


_CLOCK_SKEW_SECONDS: Final = 86_400.0
"""How far in the future an imported time may be (clocks of two machines differ)."""


def _time(obj: dict[str, Any], key: str, where: str, default: float, now: float) -> float:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CliError(f"{where}: {key!r} must be a number of seconds since the epoch")
    # A negative or far-future time is corrupt input: `acl ls` cannot print it and a
    # future `last_seen_at` would exempt the grant from the startup reconcile sweep.
    if not 0 <= value <= now + _CLOCK_SKEW_SECONDS:
        raise CliError(
            f"{where}: {key!r} must be a number of seconds since the epoch, "
            "not negative and not in the future"
        )
    return float(value)


def parse_grants(lines: Iterator[str], source: str, now: float) -> list[Grant]:
    """Validate every line first: one bad line imports nothing."""
    grants: list[Grant] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise CliError(f"{where}: not JSON ({exc.args[0] if exc.args else exc})") from None
        if not isinstance(obj, dict):
            raise CliError(f"{where}: expected a JSON object")
        raw_level = obj.get("level")
        if raw_level not in _LEVELS:
            raise CliError(f'{where}: \'level\' must be "read" or "write"')
        granted_at = _time(obj, "granted_at", where, now, now)
        grants.append(
            Grant(
                kind=_field(obj, "kind", where),
                id=_field(obj, "id", where, exact=True),
                principal_id=_field(obj, "principal_id", where),
                level=Level.parse(str(raw_level)),
                granted_at=granted_at,
                last_seen_at=_time(obj, "last_seen_at", where, granted_at, now),
            )
        )
    return grants


def _read_lines(name: str) -> tuple[list[Grant], str]:
    now = time.time()
    try:
        if name == "-":
            return parse_grants(iter(sys.stdin), "<stdin>", now), "<stdin>"
        path = Path(name)
        try:
            stream: TextIO = path.open(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"{name}: cannot read ({exc.strerror or exc})") from None
        with stream:
            return parse_grants(iter(stream), name, now), name
    except UnicodeDecodeError as exc:
        source = "<stdin>" if name == "-" else name
        raise CliError(f"{source}: not UTF-8 text ({exc.reason})") from None


async def _import_batch(store: SqliteGrantStore | PgGrantStore, batch: list[Grant]) -> int:
    """Import `batch`, in transactions bounded by IMPORT_TRANSACTION_SECONDS: one that
    runs longer is rolled back and its half-batches retried (an upsert is idempotent)."""
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
    first = await _import_batch(store, batch[:half])
    await asyncio.sleep(IMPORT_PAUSE_SECONDS)
    return first + await _import_batch(store, batch[half:])


async def _import(args: argparse.Namespace) -> int:
    import asyncio
    import sqlite3

    from lumid_core.db import DatabaseError

    grants, source = _read_lines(args.file)
    if not args.any_kind:
        for kind in sorted({g.kind for g in grants}):
            try:
                check_kind(kind)
            except CliError as exc:
                raise CliError(f"{source}: {exc}; nothing imported") from None
    where = locate_db(args.db)
    db = await open_store(args.db, create=True)
    store = grant_store_of(db)
    count = 0
    landed = "(importing the same file again is safe)"
    try:
        # Short transactions, with a pause between them: a running server's writes
        # (registrations) wait at most one batch, never the whole import.
        for start in range(0, len(grants), IMPORT_CHUNK):
            if start:
                await asyncio.sleep(IMPORT_PAUSE_SECONDS)
            count += await _import_batch(store, grants[start : start + IMPORT_CHUNK])
    except asyncio.CancelledError:  # Ctrl-C: say how far it got, then stop
        print(
            f"lumid acl import: interrupted; {count} of {len(grants)} grants were imported "
            f"before it {landed}",
            file=sys.stderr,
        )
        raise
    except DatabaseError as exc:
        raise CliError(
            f"{exc}; {count} of {len(grants)} grants were imported before it {landed}"
        ) from None
    except sqlite3.Error as exc:
        raise CliError(
            f"{where.source}={str(where.path)!r}: import failed ({exc}); {count} of "
            f"{len(grants)} grants were imported before it {landed}"
        ) from None
    except CliError as exc:
        raise CliError(
            f"{exc}; {count} of {len(grants)} grants were imported before it {landed}"
        ) from None
    finally:
        await db.close()
    print(f"imported {count} grants from {source} into {db.path}")
    return 0

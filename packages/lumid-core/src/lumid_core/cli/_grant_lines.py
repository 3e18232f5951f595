"""Grants as JSON lines, the format `acl export` writes and `acl import` reads."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, TextIO

from lumid_core.store.base import Grant, Level

from ._errors import CliError
from ._validate import id_field, time_field

__all__ = ["LEVELS", "grant_json", "parse_grants", "read_grants"]

LEVELS: Final = ("read", "write")
"""The levels a grant may name, on the command line and in a JSON line."""


def grant_json(g: Grant) -> dict[str, Any]:
    """One grant as the JSON object of its line (keys in this order)."""
    return {
        "kind": g.kind,
        "id": g.id,
        "principal_id": g.principal_id,
        "level": g.level.name.lower(),
        "granted_at": g.granted_at,
        "last_seen_at": g.last_seen_at,
    }


def parse_grants(lines: Iterator[str], source: str, now: float) -> list[Grant]:
    """Validate every line first: one bad line imports nothing.

    Blank lines are skipped; a missing `granted_at` is `now`, a missing
    `last_seen_at` is the grant's `granted_at`.

    Raises:
        CliError: naming `source:line` and the field at fault.
    """
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
        if raw_level not in LEVELS:
            raise CliError(f'{where}: \'level\' must be "read" or "write"')
        granted_at = time_field(obj, "granted_at", where, now, now)
        grants.append(
            Grant(
                kind=id_field(obj, "kind", where),
                id=id_field(obj, "id", where, exact=True),
                principal_id=id_field(obj, "principal_id", where),
                level=Level.parse(str(raw_level)),
                granted_at=granted_at,
                last_seen_at=time_field(obj, "last_seen_at", where, granted_at, now),
            )
        )
    return grants


def read_grants(name: str) -> tuple[list[Grant], str]:
    """The grants of the file `name` (`-` for standard input) and the name to cite it by.

    Raises:
        CliError: when the file cannot be read, is not UTF-8 or holds a bad line.
    """
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

"""Checks on what an operator types or imports (ids, counts, times), refused with a reason."""

from __future__ import annotations

import argparse
import math
from typing import Any, Final

from lumid_core.limits import MAX_ID_BYTES

from ._errors import CliError
from ._output import printable

__all__ = [
    "CLOCK_SKEW_SECONDS",
    "MAX_LIMIT",
    "id_field",
    "id_problem",
    "identifier",
    "limit",
    "resource_id",
    "time_field",
]

MAX_LIMIT: Final = 1_000_000
"""The most rows `billing ls --limit` lists (SQLite's LIMIT is a 64-bit integer)."""

CLOCK_SKEW_SECONDS: Final = 86_400.0
"""How far in the future an imported time may be (clocks of two machines differ)."""


def id_problem(value: str, *, exact: bool = False) -> str | None:
    """Why `value` cannot be a kind, principal or (with `exact`) resource id, or None.

    One rule for `acl grant` and `acl import`, nothing is ever stripped (the store
    keeps ids exactly: stripping could rename one resource into another). A kind or
    principal with surrounding whitespace is refused; a resource id is taken exactly
    as given (hosts derive ids from user-chosen names such as "out.csv "). Anything
    longer than `MAX_ID_BYTES` is refused.
    """
    if not value:
        return "must not be empty"
    if not exact and value != value.strip():
        return "must not have leading or trailing whitespace (ids are kept exactly)"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: argv bytes that are not UTF-8
        return "is not valid text (it holds bytes that are not UTF-8)"
    if size > MAX_ID_BYTES:
        return f"is longer than {MAX_ID_BYTES} bytes"
    return None


def identifier(value: str) -> str:
    """The argparse type for a kind, principal, email or key: `id_problem` as a usage error."""
    problem = id_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def resource_id(value: str) -> str:
    """The argparse type for a resource id, taken exactly: `id_problem(exact=True)`."""
    problem = id_problem(value, exact=True)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def limit(value: str) -> int:
    """The argparse type for a row count: a whole number from 1 to `MAX_LIMIT`."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {printable(value)!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    if number > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_LIMIT}")
    return number


def id_field(obj: dict[str, Any], key: str, where: str, *, exact: bool = False) -> str:
    """The id `obj[key]` of an imported line, under `acl grant`'s rule (`id_problem`).

    Raises:
        CliError: naming `where` (file:line) and `key`, when it is missing or refused.
    """
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise CliError(f"{where}: {key!r} must be a non-empty string")
    problem = id_problem(value, exact=exact)
    if problem is not None:
        raise CliError(f"{where}: {key!r} {problem}")
    return value


def time_field(obj: dict[str, Any], key: str, where: str, default: float, now: float) -> float:
    """The Unix time `obj[key]` of an imported line, or `default` when it is absent.

    Raises:
        CliError: naming `where` and `key`, when it is not a finite number from 0 to
            `now` plus `CLOCK_SKEW_SECONDS`.
    """
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CliError(f"{where}: {key!r} must be a number of seconds since the epoch")
    # A negative or far-future time is corrupt input: `acl ls` cannot print it and a
    # future `last_seen_at` would exempt the grant from the startup reconcile sweep.
    if not 0 <= value <= now + CLOCK_SKEW_SECONDS:
        raise CliError(
            f"{where}: {key!r} must be a number of seconds since the epoch, "
            "not negative and not in the future"
        )
    return float(value)

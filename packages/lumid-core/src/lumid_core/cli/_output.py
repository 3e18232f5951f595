"""What `lumid` prints: aligned tables, times and ages, escaped text and JSON lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["Table", "age", "emit_json", "iso_time", "print_table", "printable"]


def printable(text: str) -> str:
    """`text` with control and other unprintable characters escaped.

    Ids and upstream reasons are printed to a terminal: an escape sequence must not
    act on it.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def emit_json(value: Any, out: TextIO | None = None, *, sort_keys: bool = True) -> None:
    """Write `value` as one JSON document on one line.

    Compact; keys sorted unless `sort_keys` is False (the mapping's own order).
    """
    (out or sys.stdout).write(json.dumps(value, sort_keys=sort_keys, separators=(",", ":")) + "\n")


def iso_time(ts: float) -> str:
    """A Unix time as UTC ISO 8601 to the second: `2026-12-01T08:59:00Z`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(seconds: float | None) -> str:
    """A duration, short and rounded down: `45s`, `12m`, `3h05m`, `4d`; `-` for None."""
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


class Table:
    """Rows printed in columns aligned to the header and the widest cell.

    Widths come from the header and the first `sizing_rows` rows (all rows when
    None); once that many have been added the table is printed and later rows
    stream out as they come, so a huge listing needs no memory for its rows.
    Call `finish` after the last row; a table that saw no row prints nothing.
    """

    def __init__(self, header: tuple[str, ...], *, sizing_rows: int | None = None) -> None:
        self._header = header
        self._sizing_rows = sizing_rows
        self._first: list[tuple[str, ...]] = []
        self._widths: list[int] | None = None
        self.rows = 0
        """How many rows have been added."""

    def add(self, row: tuple[str, ...]) -> None:
        """Add one row (as many cells as the header has)."""
        self.rows += 1
        if self._widths is not None:
            self._emit(row)
            return
        self._first.append(row)
        if self._sizing_rows is not None and len(self._first) >= self._sizing_rows:
            self._size_and_flush()

    def finish(self) -> None:
        """Print what is still held back (the whole table when it had few rows)."""
        if self._widths is None and self.rows:
            self._size_and_flush()

    def _emit(self, row: tuple[str, ...]) -> None:
        assert self._widths is not None
        print("  ".join(cell.ljust(w) for cell, w in zip(row, self._widths, strict=True)).rstrip())

    def _size_and_flush(self) -> None:
        rows = (self._header, *self._first)
        self._widths = [max(len(r[i]) for r in rows) for i in range(len(self._header))]
        for row in rows:
            self._emit(row)
        self._first.clear()


def print_table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> None:
    """Print `rows` under `header`, every column as wide as its widest cell."""
    table = Table(header)
    for row in rows:
        table.add(row)
    table.finish()

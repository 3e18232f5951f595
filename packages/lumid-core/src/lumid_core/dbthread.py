"""What runs on a database connection's own thread: one call per group commit."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from typing import Any

__all__ = ["Params", "apply_batch", "first_column", "rollback"]

Params = Sequence[Any]


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open.

    Never raises (SQLite may have rolled back already, e.g. on a full disk: the
    caller keeps the original error).
    """
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def first_column(conn: sqlite3.Connection, sql: str, params: Params) -> list[Any]:
    """Run the query `sql` on `conn` and return the first column of every row."""
    cursor = conn.execute(sql, params)
    try:
        return [row[0] for row in cursor]
    finally:
        cursor.close()


def _busy(exc: sqlite3.Error) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def apply_batch(conn: sqlite3.Connection, stmts: list[tuple[str, Params]]) -> list[int | Exception]:
    """Apply `stmts` in one transaction on the writer's thread.

    Returns, per statement, its row count or the error that statement (or the whole
    transaction) met. When one statement fails, the others are retried one by one so
    a bad statement does not fail its neighbours; a busy/locked error fails the rest.
    """
    if len(stmts) == 1 and not conn.in_transaction:
        # One statement is its own transaction (autocommit): one call into SQLite, so
        # the thread gives the GIL away (and waits to get it back) as little as can be.
        try:
            return [conn.execute(*stmts[0]).rowcount]
        except sqlite3.Error as exc:
            rollback(conn)
            return [exc]
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        # No statement is at fault (e.g. locked past the busy timeout): fail the
        # batch once; one by one it would wait the busy timeout once per write.
        rollback(conn)
        return [exc] * len(stmts)
    try:
        counts: list[int | Exception] = [conn.execute(sql, p).rowcount for sql, p in stmts]
        conn.execute("COMMIT")
        return counts
    except sqlite3.Error as exc:
        rollback(conn)
        if len(stmts) == 1:
            return [exc]
    # One bad statement must not fail its neighbours: apply them one by one.
    out: list[int | Exception] = []
    for i, stmt in enumerate(stmts):
        (result,) = apply_batch(conn, [stmt])
        out.append(result)
        if isinstance(result, sqlite3.OperationalError) and _busy(result):
            out.extend([result] * (len(stmts) - i - 1))
            break
    return out

"""A store that cannot be reached on the request path -> HTTP 503 with Retry-After.

The permission engine and the registrars await their store calls through `guarded`:
a database error (another process holding SQLite's write lock past the busy
timeout, a closed or broken file) reaches the host as `HTTPException(503)` with a
`Retry-After` header, never as a raw database exception (a 500).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable
from typing import Final

from fastapi import HTTPException

from .errors import StoreError
from .logs import RateLimitedLog

__all__ = ["RETRY_AFTER_SECONDS", "STORE_ERRORS", "guarded", "store_unavailable"]

RETRY_AFTER_SECONDS: Final = 5
"""What the 503's `Retry-After` header tells clients."""

STORE_ERRORS: Final = (StoreError, sqlite3.Error, OSError)
"""What a store raises when it cannot answer (never a permission verdict)."""

_warn = RateLimitedLog(logging.getLogger("lumid_core.store"), 60.0)


def store_unavailable(what: str) -> HTTPException:
    """The 503 a host returns when `what` (e.g. "register") cannot reach the store."""
    return HTTPException(
        status_code=503,
        detail=f"{what}: the authorization store is busy or unavailable; retry shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def guarded[T](call: Awaitable[T], what: str) -> T:
    """Await a store call; a store failure becomes `store_unavailable(what)`.

    The cause is logged (rate-limited, it names LUMID_ACL_DB_PATH); the client's
    reply never carries it.
    """
    try:
        return await call
    except STORE_ERRORS as exc:
        _warn.warning(
            what, "%s: the store cannot be reached, answering 503: %s", what, exc or type(exc)
        )
        raise store_unavailable(what) from None

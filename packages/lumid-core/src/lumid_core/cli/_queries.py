"""The CLI's own read queries (principals by email, outbox sinks), kept in one place.

The grant store and the outbox have no lookup for these two operator questions yet;
a store that adds one (or a non-SQLite backend) replaces the function here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # the database layer is imported when a command runs, not for --help
    from lumid_core.db import Database

__all__ = ["known_sinks", "principals_by_email"]

_PRINCIPALS_BY_EMAIL: Final = (
    "SELECT principal_id FROM principals WHERE email = ? COLLATE NOCASE ORDER BY 1"
)
_OUTBOX_SINKS: Final = "SELECT DISTINCT sink FROM outbox ORDER BY 1"


async def principals_by_email(db: Database, email: str) -> list[str]:
    """The subs identity has recorded with `email` (any case), in order."""
    return [str(s) for s in await db.read_column(_PRINCIPALS_BY_EMAIL, (email,))]


async def known_sinks(db: Database) -> list[str]:
    """Every sink that has ever queued an outbox row, in order."""
    return [str(s) for s in await db.read_column(_OUTBOX_SINKS)]

"""Who is who for billing: principal_id -> email, as last seen by identity.

Identity records the email of every principal it resolves; billing reads it back
to address Runmesh, which knows users only by email. The SQLite directory keeps it
across restarts, so rows for principals not seen since the last restart are billed.
"""

from __future__ import annotations

import time
from typing import Final, Protocol, runtime_checkable

from .db import Database

__all__ = ["MemoryPrincipalDirectory", "PrincipalDirectory", "SqlitePrincipalDirectory"]

_UPSERT: Final = (
    "INSERT INTO principals (principal_id, email, last_seen_at) VALUES (?, ?, ?) "
    "ON CONFLICT (principal_id) DO UPDATE SET email = excluded.email, "
    "last_seen_at = excluded.last_seen_at"
)
# Refresh last_seen_at at most this often per principal (a write costs an fsync).
_REFRESH_SECONDS: Final = 3600.0


@runtime_checkable
class PrincipalDirectory(Protocol):
    async def record(self, principal_id: str, email: str) -> None:
        """Remember (durably, where the implementation can) the principal's email."""
        ...

    async def email_for(self, principal_id: str) -> str | None:
        """The principal's last known email, or None."""
        ...


class MemoryPrincipalDirectory:
    """A process-local directory (tests, or hosts with no billing)."""

    def __init__(self) -> None:
        self._emails: dict[str, str] = {}

    async def record(self, principal_id: str, email: str) -> None:
        self._emails[principal_id] = email

    async def email_for(self, principal_id: str) -> str | None:
        return self._emails.get(principal_id)


class SqlitePrincipalDirectory:
    """The `principals` table of the plugin database, with a write-avoiding memo."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._written: dict[str, tuple[str, float]] = {}

    async def record(self, principal_id: str, email: str) -> None:
        now = time.time()
        seen = self._written.get(principal_id)
        if seen is not None and seen[0] == email and now - seen[1] < _REFRESH_SECONDS:
            return
        await self._db.write(_UPSERT, (principal_id, email, now))
        self._written[principal_id] = (email, now)

    async def email_for(self, principal_id: str) -> str | None:
        row = self._db.read_one(
            "SELECT email FROM principals WHERE principal_id = ?", (principal_id,)
        )
        return None if row is None else str(row[0])

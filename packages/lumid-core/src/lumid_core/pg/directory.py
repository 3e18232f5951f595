"""`PrincipalDirectory` on PostgreSQL: principal_id -> email shared by every replica."""

from __future__ import annotations

import time
from typing import Final

from .database import NOW, PgDatabase

__all__ = ["PgPrincipalDirectory"]

_UPSERT: Final = (
    "INSERT INTO lumid_principals (principal_id, email, last_seen_at) "  # noqa: S608 (constant SQL)
    f"VALUES ($1, $2, {NOW}) ON CONFLICT (principal_id) DO UPDATE SET "
    "email = excluded.email, last_seen_at = excluded.last_seen_at"
)
_EMAIL: Final = "SELECT email FROM lumid_principals WHERE principal_id = $1"
# Refresh last_seen_at at most this often per principal and replica.
_REFRESH_SECONDS: Final = 3600.0


class PgPrincipalDirectory:
    """The `lumid_principals` table, with a per-replica memo that skips repeated writes."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self._pool = db.pool
        self._written: dict[str, tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"PgPrincipalDirectory({self._db!r})"

    async def record(self, principal_id: str, email: str) -> None:
        """Remember the principal's email (committed when this returns)."""
        now = time.monotonic()
        seen = self._written.get(principal_id)
        if seen is not None and seen[0] == email and now - seen[1] < _REFRESH_SECONDS:
            return
        await self._pool.execute(_UPSERT, principal_id, email)
        self._written[principal_id] = (email, now)

    async def email_for(self, principal_id: str) -> str | None:
        """The principal's last known email, or None (a primary-key read)."""
        value = await self._pool.fetchval(_EMAIL, principal_id)
        return None if value is None else str(value)

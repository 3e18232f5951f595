"""`PrincipalDirectory` on PostgreSQL: principal_id -> email shared by every replica.

The runtime wraps it in `lumid_core.directory.WriteBehindDirectory` (queue, batches,
memo of unchanged emails), so this class only talks to the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .database import NOW, PgTable

__all__ = ["PgPrincipalDirectory"]

_UPSERT: Final = (
    "INSERT INTO lumid_principals (principal_id, email, last_seen_at) "  # noqa: S608 (constant SQL)
    f"VALUES ($1, $2, {NOW}) ON CONFLICT (principal_id) DO UPDATE SET "
    "email = excluded.email, last_seen_at = excluded.last_seen_at"
)
_UPSERT_MANY: Final = (
    "INSERT INTO lumid_principals (principal_id, email, last_seen_at) "  # noqa: S608 (constant SQL)
    f"SELECT p, e, {NOW} FROM unnest($1::text[], $2::text[]) AS t(p, e) "
    "ON CONFLICT (principal_id) DO UPDATE SET "
    "email = excluded.email, last_seen_at = excluded.last_seen_at"
)
_EMAIL: Final = "SELECT email FROM lumid_principals WHERE principal_id = $1"


class PgPrincipalDirectory(PgTable):
    """The `lumid_principals` table."""

    async def record(self, principal_id: str, email: str) -> None:
        """Remember the principal's email (committed when this returns)."""
        await self._pool.execute(_UPSERT, principal_id, email)

    async def record_many(self, emails: Mapping[str, str]) -> None:
        """Record every principal -> email of `emails` in one statement (all or none)."""
        if emails:
            await self._pool.execute(_UPSERT_MANY, list(emails), list(emails.values()))

    async def email_for(self, principal_id: str) -> str | None:
        """The principal's last known email, or None (a primary-key read)."""
        return await self._text(_EMAIL, principal_id)

"""`lumid doctor`'s check of the PostgreSQL store: connection, schema version, permissions."""

from __future__ import annotations

from typing import Final

from lumid_core.doctor import Check, Status
from lumid_core.settings import LumidSettings

from .database import ENV_VAR, PgDatabase, PgStoreError, reason_for, redact
from .schema import SCHEMA_VERSION, version

__all__ = ["check_postgres"]

TABLES: Final = ("lumid_grants", "lumid_principals", "lumid_resource_parents", "lumid_outbox")
PRIVILEGES: Final = ("SELECT", "INSERT", "UPDATE", "DELETE")


async def check_postgres(settings: LumidSettings) -> tuple[Check, PgDatabase | None]:
    """Open the store as `install()` does (migrating if needed) and check the role's privileges.

    The role must be able to read and write every table. Never prints the password.

    Returns the check and, when it passed, the open store (the caller closes it).
    """
    url = settings.database_url
    assert url is not None
    shown = redact(url)
    try:
        db = await PgDatabase.open(
            url,
            pool_size=1,
            statement_timeout_seconds=settings.lumid_database_statement_timeout_seconds,
        )
    except PgStoreError as exc:
        return Check("database", Status.FAIL, str(exc), ENV_VAR), None
    try:
        async with db.pool.acquire() as conn:
            server = str(await conn.fetchval("SHOW server_version")).split(" ", 1)[0]
            found = await version(conn)
            missing: list[str] = []
            for table in TABLES:
                for privilege in PRIVILEGES:
                    allowed = await conn.fetchval(
                        "SELECT has_table_privilege(current_user, $1, $2)", table, privilege
                    )
                    if not allowed:
                        missing.append(f"{privilege} on {table}")
            role = str(await conn.fetchval("SELECT current_user"))
    except Exception as exc:
        await db.close()
        return Check(
            "database", Status.FAIL, f"{ENV_VAR}={shown}: {reason_for(exc)}", ENV_VAR
        ), None
    if missing:
        await db.close()
        return Check(
            "database",
            Status.FAIL,
            f"{ENV_VAR}={shown}: role {role!r} lacks {', '.join(missing[:6])}"
            + (f" (and {len(missing) - 6} more)" if len(missing) > 6 else "")
            + "; the plugin writes grants, principals and the billing outbox",
            ENV_VAR,
        ), None
    return Check(
        "database",
        Status.OK,
        f"{shown}: PostgreSQL {server}, schema v{found} (this lumid-core: v{SCHEMA_VERSION}), "
        f"role {role!r} may read and write every table",
        ENV_VAR,
    ), db

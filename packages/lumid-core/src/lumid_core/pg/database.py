"""An open PostgreSQL store: the asyncpg pool, its errors, and the server clock.

Every error names LUMID_DATABASE_URL and shows the URL with its credentials and
query hidden; the password never reaches a message, a log line or a repr.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Final

import asyncpg

from lumid_core.errors import StoreError
from lumid_core.urls import redact_url

from .schema import SCHEMA_VERSION, SchemaTooNew, migrate

__all__ = [
    "DRIVER_ERRORS",
    "ENV_VAR",
    "PgDatabase",
    "PgStoreError",
    "PgTable",
    "reason_for",
    "redact",
    "row_count",
]

ENV_VAR: Final = "LUMID_DATABASE_URL"
CONNECT_TIMEOUT_SECONDS: Final = 10.0
DRIVER_ERRORS: Final = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # A pooled connection the server terminated can be handed out in a state the
    # protocol refuses ("another operation is in progress"): the server is not
    # answering, which is a 503, not a 500.
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
"""What the driver raises when the server cannot answer (stores turn it into PgStoreError)."""
NOW: Final = "extract(epoch from clock_timestamp())::float8"
"""SQL for the server's clock in seconds: every replica stamps rows with one clock."""


class PgStoreError(StoreError):
    """The PostgreSQL store cannot be opened or used; the message names LUMID_DATABASE_URL."""

    variable = ENV_VAR


def row_count(status: str) -> int:
    """The row count of a command tag such as `DELETE 3` (0 when it carries none)."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


def redact(url: str) -> str:
    """`url` with user, password and query hidden (`postgresql://***@host:5432/db?***`)."""
    return redact_url(url)


def reason_for(exc: BaseException, password: str | None = None) -> str:
    """A short reason for a connection or query failure, never holding the password."""
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        text = "authentication failed (wrong user or password)"
    elif isinstance(exc, asyncpg.InvalidCatalogNameError):
        text = "the database does not exist"
    elif isinstance(exc, asyncpg.InsufficientPrivilegeError):
        text = f"permission denied ({exc})"
    elif isinstance(exc, TimeoutError):
        text = "timed out"
    elif isinstance(exc, OSError):
        text = f"cannot connect ({exc.strerror or exc})"
    elif isinstance(exc, asyncpg.PostgresError):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    if password:
        text = text.replace(password, "***")
    return text[:300]


def _password(url: str) -> str | None:
    userinfo = url.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[0]
    return userinfo.partition(":")[2] or None if userinfo else None


class PgDatabase:
    """The pool every PostgreSQL store shares. Create with `await PgDatabase.open(url)`.

    `opened_at` is the server's clock when the pool opened (reconcile keeps grants
    written since then); `replica_id` names this process in outbox leases.
    """

    def __init__(self, url: str, pool: asyncpg.Pool, opened_at: float, replica_id: str) -> None:
        self._url = url
        self.pool = pool
        self.opened_at = opened_at
        self.replica_id = replica_id
        self.path = redact(url)
        """The redacted URL, shown where the SQLite store shows its file path."""

    def __repr__(self) -> str:
        return f"PgDatabase({self.path!r})"

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        statement_timeout_seconds: float = 30.0,
        connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
        migrate_schema: bool = True,
        env_var: str = ENV_VAR,
    ) -> PgDatabase:
        """Connect, migrate (unless `migrate_schema=False`) and return the open store.

        Raises `PgStoreError` naming `env_var` when the server is unreachable, refuses
        the credentials, or holds a newer schema.
        """
        shown = redact(url)
        secret = _password(url)
        settings = {
            "application_name": "lumid",
            "statement_timeout": str(int(statement_timeout_seconds * 1000)),
        }
        try:
            pool = await asyncio.wait_for(
                asyncpg.create_pool(
                    url,
                    min_size=1,
                    max_size=pool_size,
                    timeout=connect_timeout_seconds,
                    server_settings=settings,
                ),
                connect_timeout_seconds + 1,
            )
        except Exception as exc:
            raise PgStoreError(f"{env_var}={shown}: {reason_for(exc, secret)}") from None
        try:
            async with pool.acquire() as conn:
                if migrate_schema:
                    await migrate(conn)
                opened_at = float(await conn.fetchval(f"SELECT {NOW}"))
                pid = int(await conn.fetchval("SELECT pg_backend_pid()"))
        except SchemaTooNew as exc:
            await pool.close()
            raise PgStoreError(
                f"{env_var}={shown}: schema version {exc.found} is newer than this lumid-core "
                f"understands ({SCHEMA_VERSION}); upgrade lumid-core"
            ) from None
        except Exception as exc:
            await pool.close()
            raise PgStoreError(
                f"{env_var}={shown}: cannot prepare the schema: {reason_for(exc, secret)}"
            ) from None
        replica = f"{socket.gethostname()}:{os.getpid()}:{pid}"
        return cls(url, pool, opened_at, replica)

    async def close(self) -> None:
        """Close the pool (waits for connections in use to be released); idempotent."""
        if not self.pool.is_closing():
            await self.pool.close()

    def error(self, exc: BaseException, doing: str) -> PgStoreError:
        """A `PgStoreError` for a failure while `doing` something, without the password."""
        return PgStoreError(
            f"{ENV_VAR}={self.path}: {doing} failed: {reason_for(exc, _password(self._url))}"
        )


class PgTable:
    """Base of the stores kept in tables of one open `PgDatabase`: holds it and its pool."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self._pool = db.pool

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._db!r})"

    async def _text(self, sql: str, *args: object) -> str | None:
        """The first column of the first row `sql` returns, as text, or None."""
        value = await self._pool.fetchval(sql, *args)
        return None if value is None else str(value)

"""What every host plugin opens at install and closes at shutdown.

`open_runtime` validates nothing by itself (settings arrive validated), opens the
store (SQLite at LUMID_ACL_DB_PATH, or the shared PostgreSQL store when
LUMID_DATABASE_URL is set), the pooled HTTP client and the identity provider, and
closes them in reverse order (the principal emails still queued are written before
the store closes). Plugins build their policy, hooks and bindings on top.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from .db import Database
from .directory import PrincipalDirectory, SqlitePrincipalDirectory, WriteBehindDirectory
from .http import make_http_client
from .identity import LumIdIdentityProvider
from .outbox import Outbox
from .registrar import Registrar
from .settings import LumidSettings
from .store import GrantStore, SqliteGrantStore
from .store.parents import ParentLinks, SqliteParentLinks

if TYPE_CHECKING:  # asyncpg is imported only when LUMID_DATABASE_URL selects it
    from .pg import PgDatabase, PgOutbox

__all__ = ["CoreRuntime", "open_runtime"]


@dataclass(frozen=True)
class CoreRuntime:
    """What `open_runtime` opened for one plugin; valid until its context exits."""

    settings: LumidSettings
    db: Database | PgDatabase
    """The open backend; `db.path` is the SQLite file or the redacted PostgreSQL URL."""
    store: GrantStore
    directory: WriteBehindDirectory
    """Principal emails: recorded behind the request, read back queue-first."""
    parents: ParentLinks
    http: httpx.AsyncClient
    identity: LumIdIdentityProvider
    registrar: Registrar
    exit_stack: AsyncExitStack
    """Plugins push their own clean-ups here; they run before the core's."""

    def outbox(self, sink: str) -> Outbox | PgOutbox:
        """The outbox of `sink` on this runtime's backend."""
        if isinstance(self.db, Database):
            return Outbox(self.db, sink)
        from .pg import PgOutbox

        box = PgOutbox(self.db, sink, lease_seconds=self.settings.lumid_outbox_lease_seconds)
        # Runs after the plugin's own clean-ups entered later (its worker stops first).
        self.exit_stack.push_async_callback(box.aclose)
        return box


async def _open_backend(
    settings: LumidSettings, plugin: str, logger: logging.Logger
) -> Database | PgDatabase:
    url = settings.database_url
    if url is None:
        return await Database.open(settings.lumid_acl_db_path, watch=True)
    from .pg import PgDatabase

    if "lumid_acl_db_path" in settings.model_fields_set:
        logger.warning(
            "%s: LUMID_ACL_DB_PATH is ignored: LUMID_DATABASE_URL selects the PostgreSQL store",
            plugin,
        )
    return await PgDatabase.open(
        url,
        pool_size=settings.lumid_database_pool_size,
        statement_timeout_seconds=settings.lumid_database_statement_timeout_seconds,
    )


@asynccontextmanager
async def open_runtime(
    settings: LumidSettings, *, plugin: str, logger: logging.Logger
) -> AsyncIterator[CoreRuntime]:
    """Open the store, HTTP client and identity provider for `plugin`.

    Raises a `lumid_core.errors.StoreError` (a RuntimeError) when the store cannot be
    used: `DatabaseError` naming LUMID_ACL_DB_PATH, or `PgStoreError` naming
    LUMID_DATABASE_URL.
    """
    for var in settings.insecure_http_urls():  # only with LUMID_ALLOW_INSECURE_HTTP=1
        logger.warning(
            "%s: %s is http:// to a non-loopback host: credentials sent to it travel in "
            "clear text (allowed by LUMID_ALLOW_INSECURE_HTTP=1; use https:// unless a "
            "TLS-terminating proxy on a private network is in between)",
            plugin,
            var,
        )
    async with AsyncExitStack() as stack:
        db = await _open_backend(settings, plugin, logger)
        stack.push_async_callback(db.close)
        store: GrantStore
        backing: PrincipalDirectory
        parents: ParentLinks
        if isinstance(db, Database):
            store = SqliteGrantStore(db)
            backing = SqlitePrincipalDirectory(db)
            parents = SqliteParentLinks(db)
            if (moved := db.legacy_migration) is not None:
                logger.info(
                    "%s: migrated %d grants from the lumid-plugins %s table acl_grants "
                    "(%d new, %d merged into existing grants); the old table is kept as %s",
                    plugin,
                    moved.rows,
                    moved.layout,
                    moved.added,
                    moved.rows - moved.added,
                    moved.archived_as,
                )
        else:
            from .pg import PgGrantStore, PgParentLinks, PgPrincipalDirectory

            store = PgGrantStore(db)
            backing = PgPrincipalDirectory(db)
            parents = PgParentLinks(db)
        http = make_http_client(settings)
        stack.push_async_callback(http.aclose)
        directory = WriteBehindDirectory(
            backing,
            max_pending=settings.lumid_email_queue_size,
            memo_size=settings.lumid_identity_cache_size,
            logger=logger,
        )
        stack.push_async_callback(directory.aclose)  # before the database closes
        identity = LumIdIdentityProvider(
            name=f"{plugin}.identity", settings=settings, client=http, directory=directory
        )
        registrar = Registrar(name=f"{plugin}.registrar", store=store)
        plugin_stack = await stack.enter_async_context(AsyncExitStack())
        logger.debug(
            "%s: database %s open, lum.id at %s", plugin, db.path, settings.lum_id_base_url
        )
        yield CoreRuntime(
            settings=settings,
            db=db,
            store=store,
            directory=directory,
            parents=parents,
            http=http,
            identity=identity,
            registrar=registrar,
            exit_stack=plugin_stack,
        )

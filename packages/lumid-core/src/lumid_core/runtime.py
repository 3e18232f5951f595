"""What every host plugin opens at install and closes at shutdown.

`open_runtime` validates nothing by itself (settings arrive validated), opens the
database, the pooled HTTP client and the identity provider, and closes them in
reverse order (the principal emails still queued are written before the database
closes). Plugins build their policy, hooks and bindings on top.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx

from .db import Database
from .directory import SqlitePrincipalDirectory, WriteBehindDirectory
from .http import make_http_client
from .identity import LumIdIdentityProvider
from .registrar import Registrar
from .settings import LumidSettings
from .store import SqliteGrantStore

__all__ = ["CoreRuntime", "open_runtime"]


@dataclass(frozen=True)
class CoreRuntime:
    settings: LumidSettings
    db: Database
    store: SqliteGrantStore
    directory: WriteBehindDirectory
    """Principal emails: recorded behind the request, read back queue-first."""
    http: httpx.AsyncClient
    identity: LumIdIdentityProvider
    registrar: Registrar
    exit_stack: AsyncExitStack
    """Plugins push their own clean-ups here; they run before the core's."""


@asynccontextmanager
async def open_runtime(
    settings: LumidSettings, *, plugin: str, logger: logging.Logger
) -> AsyncIterator[CoreRuntime]:
    """Open the database, HTTP client and identity provider for `plugin`.

    Raises `lumid_core.db.DatabaseError` (a RuntimeError naming LUMID_ACL_DB_PATH)
    when the database cannot be used.
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
        db = await Database.open(settings.lumid_acl_db_path)
        stack.push_async_callback(db.close)
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
        http = make_http_client(settings)
        stack.push_async_callback(http.aclose)
        store = SqliteGrantStore(db)
        directory = WriteBehindDirectory(
            SqlitePrincipalDirectory(db),
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
            http=http,
            identity=identity,
            registrar=registrar,
            exit_stack=plugin_stack,
        )

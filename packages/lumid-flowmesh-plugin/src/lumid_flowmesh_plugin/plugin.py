"""`install()`: what FlowMesh's loader calls (`FLOWMESH_PLUGINS=lumid_flowmesh_plugin`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

from flowmesh_hook import BaseBindings

from lumid_core import PermissionEngine, load_settings
from lumid_core.runtime import open_runtime

from .billing import BILLING_SINK, RunmeshBilling, open_billing
from .guard import BalanceGuard
from .policy import FLOWMESH_POLICY
from .registrar import FlowMeshRegistrar
from .settings import FlowMeshSettings
from .supplier import NamespaceSupplierResolver

__all__ = ["PLUGIN", "FlowMeshBindings", "describe", "install", "logger"]

PLUGIN: Final = "lumid_flowmesh_plugin"
logger = logging.getLogger(PLUGIN)


@dataclass(frozen=True)
class FlowMeshBindings(BaseBindings):
    """`flowmesh_hook.BaseBindings` (passes both hosts' gates) plus the billing handle.

    `billing` is for tests, benchmarks and diagnostics (None when billing is off).
    """

    billing: RunmeshBilling | None = None


@asynccontextmanager
async def install() -> AsyncIterator[FlowMeshBindings]:
    """Validate settings, open the database and clients, yield the hooks, close all.

    Raises `lumid_core.SettingsError` naming the variable on bad configuration and
    a `lumid_core.errors.StoreError` (a RuntimeError naming LUMID_ACL_DB_PATH, or
    LUMID_DATABASE_URL) when the store cannot be used: FlowMesh then refuses to start.
    """
    settings = load_settings(FlowMeshSettings)
    async with open_runtime(settings, plugin=PLUGIN, logger=logger) as runtime:
        checker = PermissionEngine(
            name=f"{PLUGIN}.permissions", policy=FLOWMESH_POLICY, store=runtime.store
        )
        registrar = FlowMeshRegistrar(
            name=f"{PLUGIN}.registrar", core=runtime.registrar, parents=runtime.parents
        )
        supplier = NamespaceSupplierResolver(name=f"{PLUGIN}.supplier")
        billing: RunmeshBilling | None = None
        guards: tuple[BalanceGuard, ...] = ()
        if settings.billing_enabled:
            billing = await runtime.exit_stack.enter_async_context(
                open_billing(
                    settings,
                    outbox=runtime.outbox(BILLING_SINK),
                    directory=runtime.directory,
                    parents=runtime.parents,
                    plugin=PLUGIN,
                    logger=logger,
                )
            )
            if settings.guard_enabled:
                guards = (
                    BalanceGuard(
                        name=f"{PLUGIN}.balance_guard",
                        client=billing.client,
                        directory=runtime.directory,
                        org_id=settings.lumid_org_id,
                        topup_url=settings.lumid_topup_url,
                        logger=logger,
                    ),
                )
        logger.info("%s: %s", PLUGIN, describe(settings))
        if (mistake := half_configured(settings)) is not None:
            logger.warning("%s: %s", PLUGIN, mistake)
        if (note := settings.balance_guard_note) is not None:
            logger.warning("%s: %s", PLUGIN, note)
        yield FlowMeshBindings(
            identity_providers=(runtime.identity,),
            permission_checkers=(checker,),
            resource_registrars=(registrar,),
            usage_sinks=() if billing is None else (billing.sink,),
            submission_guards=guards,
            supplier_resolvers=(supplier,),
            billing=billing,
        )


def half_configured(settings: FlowMeshSettings) -> str | None:
    """A billing set-up that is half there (likely a mistake), said plainly; else None.

    Half there: one of the two billing variables set, or else the balance guard on
    while billing is off (`guard_without_billing`, which `lumid doctor` reports too).
    """
    if settings.billing_enabled:
        return None
    url_set = bool(settings.runmesh_billing_base_url)
    secret_set = bool(settings.bridge_secret)
    if url_set != secret_set:
        return f"billing is OFF although only half configured: {settings.billing_off_reason}"
    return guard_without_billing(settings)


def guard_without_billing(settings: FlowMeshSettings) -> str | None:
    """Why LUMID_BALANCE_GUARD=on does nothing (billing is off), or None."""
    if settings.billing_enabled or settings.lumid_balance_guard != "on":
        return None
    return f"LUMID_BALANCE_GUARD=on has no effect: billing is off ({settings.billing_off_reason})"


def describe(settings: FlowMeshSettings) -> str:
    """The install log line: which hooks are on and why (never a secret)."""
    on = ["identity (lum.id at " + settings.lum_id_base_url + ")", "permissions", "registrar"]
    off: list[str] = []
    if settings.billing_enabled:
        on.append(f"billing (Runmesh at {settings.runmesh_billing_base_url})")
        if settings.guard_enabled:
            on.append("balance guard")
        else:
            off.append("balance guard (LUMID_BALANCE_GUARD=off)")
    else:
        reason = settings.billing_off_reason
        off.append(f"billing ({reason})")
        off.append(f"balance guard ({reason})")
    on.append("supplier (worker namespace)")
    url = settings.database_url
    if url is None:
        database: object = settings.lumid_acl_db_path
    else:
        from lumid_core.pg import redact  # asyncpg only when PostgreSQL is configured

        database = redact(url)
    line = f"hooks on: {', '.join(on)}; database {database}"
    if off:
        line += f"; off: {', '.join(off)}"
    return line

"""The doctor's checks every host shares: the plugin list, lum.id, settings and the store."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lumid_core.settings import INSECURE_HTTP_VAR, LumidSettings, SettingsError, load_settings
from lumid_core.urls import redact_url

from .context import DoctorContext
from .database import check_database, check_upgrade
from .report import Check, Status

if TYPE_CHECKING:
    from lumid_core.db import Database
    from lumid_core.pg import PgDatabase

__all__ = [
    "SettingsChecks",
    "StoreChecks",
    "check_insecure_urls",
    "check_lumid",
    "check_plugins_listed",
    "check_settings",
    "check_store",
]


@dataclass(frozen=True, slots=True)
class SettingsChecks:
    """What loading the settings said, and the settings the other checks run with."""

    checks: list[Check]
    settings: LumidSettings | None
    """None when the settings fail even with every failed variable at its default."""
    failed: frozenset[str] = frozenset()
    """The variables that failed validation (the checks that use them are skipped)."""


def _defaults_for(settings_cls: type[LumidSettings], variables: set[str]) -> dict[str, Any]:
    """Overrides putting each failed variable back to its default (None if unknown)."""
    out: dict[str, Any] = {}
    for var in variables:
        info = settings_cls.model_fields.get(var.lower())
        if info is not None and not info.is_required():
            out[var.lower()] = info.get_default(call_default_factory=True)
    return out


def check_settings(settings_cls: type[LumidSettings]) -> SettingsChecks:
    """Load `settings_cls` from the environment: an OK line, or a FAIL per variable.

    After a failure the settings are loaded again with the failed variables at
    their defaults, so that the other checks can still run.
    """
    try:
        settings = load_settings(settings_cls)
    except SettingsError as exc:
        failures = [
            Check("settings", Status.FAIL, str(p), p.variable or None) for p in exc.problems
        ]
        failed = {c.env_var for c in failures if c.env_var is not None}
        try:  # the rest may still be fine: check it with the failed ones at defaults
            again = load_settings(settings_cls, **_defaults_for(settings_cls, failed))
        except SettingsError:
            return SettingsChecks(failures, None, frozenset(failed))
        return SettingsChecks(failures, again, frozenset(failed))
    ok = Check(
        "settings", Status.OK, f"{settings_cls.__name__} valid (org {settings.lumid_org_id})"
    )
    return SettingsChecks([ok], settings)


def check_insecure_urls(settings: LumidSettings) -> list[Check]:
    """A WARN per credential-carrying URL that is http:// off this host.

    Such URLs are allowed by LUMID_ALLOW_INSECURE_HTTP=1 only: else the settings
    would not have loaded.
    """
    return [
        Check(
            "settings",
            Status.WARN,
            f"{var} is http:// to a non-loopback host: credentials sent to it travel "
            f"in clear text ({INSECURE_HTTP_VAR}=1 allows it; use https:// unless a "
            "TLS-terminating proxy on a private network is in between)",
            var,
        )
        for var in settings.insecure_http_urls()
    ]


@dataclass(slots=True)
class StoreChecks:
    """The store's lines and, when it opened, the store (the caller closes it)."""

    checks: list[Check] = field(default_factory=list)
    db: Database | PgDatabase | None = None
    not_created: bool = False
    """True when there is no SQLite file yet and the server could create it."""


async def check_store(settings: LumidSettings, failed: frozenset[str]) -> StoreChecks:
    """Check the store the server would use, read only where it is SQLite.

    That is PostgreSQL under LUMID_DATABASE_URL, else the SQLite file at
    LUMID_ACL_DB_PATH (and what it holds of lumid-plugins 0.2.x). Nothing is
    checked when the store's variable is among the `failed` ones.
    """
    out = StoreChecks()
    if settings.database_url is not None:  # the shared PostgreSQL store (docs/scaling.md)
        from lumid_core.pg.doctor import check_postgres

        if "LUMID_DATABASE_URL" not in failed:
            db_check, out.db = await check_postgres(settings)
            out.checks.append(db_check)
    elif "LUMID_ACL_DB_PATH" not in failed:
        db_check, out.db = await check_database(settings.lumid_acl_db_path)
        out.checks.append(db_check)
        out.not_created = out.db is None and db_check.status is Status.OK
        if (upgrade := check_upgrade(settings.lumid_acl_db_path)) is not None:
            out.checks.append(upgrade)
    return out


def check_plugins_listed(
    environ: Mapping[str, str], variable: str, module: str, host: str
) -> Check | None:
    """Whether the host's plugin list `variable` (e.g. FLOWMESH_PLUGINS) loads `module`.

    Nothing to say when it is unset: the doctor may run outside the server's
    environment. A list without the module is a FAIL: the server would run without
    lum.id identity and authorization.
    """
    raw = environ.get(variable)
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if module in names:
        return Check("plugins", Status.OK, f"{variable} loads {module}", variable)
    return Check(
        "plugins",
        Status.FAIL,
        f"{variable}={raw.strip()!r} does not list {module} (the module's name, not "
        f"the wheel's): {host} would run without lum.id identity and authorization",
        variable,
    )


async def check_lumid(ctx: DoctorContext) -> Check:
    """Introspect a dummy token: lum.id must answer 200 with `active: false` in time."""
    url = redact_url(ctx.settings.lum_id_base_url)
    dummy = "lumid-doctor-" + secrets.token_hex(16)
    started = time.perf_counter()
    seen = await ctx.introspect(dummy)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if seen.error is not None:
        return Check(
            "lum.id", Status.FAIL, f"LUM_ID_BASE_URL={url}: {seen.error}", "LUM_ID_BASE_URL"
        )
    if seen.active:
        return Check(
            "lum.id",
            Status.FAIL,
            f"LUM_ID_BASE_URL={url}: a random dummy token came back active; "
            "this is not lum.id's introspection endpoint",
            "LUM_ID_BASE_URL",
        )
    ctx.lumid_ok = True
    return Check(
        "lum.id",
        Status.OK,
        f"{url}/oauth/introspect answered active=false for a dummy token "
        f"in {elapsed_ms:.0f} ms (timeout {ctx.settings.lumid_introspect_timeout_seconds:g}s)",
        "LUM_ID_BASE_URL",
    )

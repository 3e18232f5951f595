"""Lumilake's checks for `lumid doctor --host lumilake` (entry point `lumid.doctor`).

On top of the core's (settings, database, lum.id): `LUMILAKE_PLUGINS` (when set)
loads this plugin, the remote optimizer's catalog when one is configured, and
whether a failed plugin would open the API to everyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from lumid_core.doctor import Check, DoctorContext, PluginDoctor, Status
from lumid_core.urls import redact_url

from .optimizer import CatalogError, fetch_optimizer_catalog
from .plugin import PLUGIN, ignored_db_warning
from .policy import LUMILAKE_POLICY
from .settings import LumilakeSettings

__all__ = ["DOCTOR"]

REQUIRE_VAR: Final = "LUMILAKE_REQUIRE_IDENTITY_PROVIDER"
PLUGINS_VAR: Final = "LUMILAKE_PLUGINS"


async def _checks(ctx: DoctorContext, settings: LumilakeSettings) -> Sequence[Check]:
    """`lumid doctor --host lumilake`: the optimizer, the plugin list and the old db path."""
    out = [await _optimizer(ctx, settings), _require_identity(ctx)]
    if (ignored := settings.ignored_legacy_db_path) is not None:
        detail = ignored_db_warning(ignored, settings.lumid_acl_db_path)
        out.append(Check("upgrade", Status.WARN, detail, "LUMID_LUMILAKE_ACL_DB_PATH"))
    return out


async def _optimizer(ctx: DoctorContext, settings: LumilakeSettings) -> Check:
    url = settings.lumilake_remote_optimizer_url
    if url is None:
        return Check(
            "optimizer",
            Status.OK,
            "remote optimizer off (LUMILAKE_REMOTE_OPTIMIZER_URL unset)",
            "LUMILAKE_REMOTE_OPTIMIZER_URL",
        )
    try:
        names = await fetch_optimizer_catalog(settings, ctx.http)
    except CatalogError as exc:
        return Check(
            "optimizer",
            Status.FAIL,
            f"LUMILAKE_REMOTE_OPTIMIZER_URL={redact_url(url)}: catalog fetch failed: {exc}",
            exc.variable,
        )
    if not names:
        return Check(
            "optimizer",
            Status.WARN,
            f"{redact_url(url)} advertises no optimizer types",
            "LUMILAKE_REMOTE_OPTIMIZER_URL",
        )
    return Check(
        "optimizer",
        Status.OK,
        f"{redact_url(url)} offers {len(names)} types: {', '.join(names[:20])}",
        "LUMILAKE_REMOTE_OPTIMIZER_URL",
    )


def _require_identity(ctx: DoctorContext) -> Check:
    if ctx.environ.get(REQUIRE_VAR, "").strip() == "1":
        return Check(
            "fail closed",
            Status.OK,
            f"{REQUIRE_VAR}=1: if this plugin fails to load, Lumilake answers 503",
            REQUIRE_VAR,
        )
    return Check(
        "fail closed",
        Status.WARN,
        f"{REQUIRE_VAR} is not 1: if this plugin fails to load (Lumilake logs and skips "
        "it), every request is served as a default admin",
        REQUIRE_VAR,
    )


# (host, label, settings class, policy, plugin-list variable, module, own checks)
DOCTOR: Final = PluginDoctor(
    "lumilake", "Lumilake", LumilakeSettings, LUMILAKE_POLICY, PLUGINS_VAR, PLUGIN, _checks
)
"""The `HostDoctor` the `lumid.doctor` entry point `lumilake` names."""

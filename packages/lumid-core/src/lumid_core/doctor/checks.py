"""The doctor's checks every host shares: the plugin list, lum.id, settings and the store."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

from lumid_core.urls import redact_url

from .context import DoctorContext
from .report import Check, Status

__all__ = ["check_lumid", "check_plugins_listed"]


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

"""FlowMesh's checks for `lumid doctor --host flowmesh` (entry point `lumid.doctor`).

On top of the core's (settings, database, lum.id): Runmesh reachable and accepting
the bridge secret when billing is on, the billing outbox's backlog, and whether
`FLOWMESH_API_KEY` resolves to a principal FlowMesh's workers can work with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from lumid_core.db import Database
from lumid_core.doctor import Check, DoctorContext, PluginDoctor, Status
from lumid_core.outbox import Outbox
from lumid_core.urls import redact_url

from .billing import BILLING_SINK
from .plugin import PLUGIN, guard_without_billing
from .policy import FLOWMESH_POLICY
from .runmesh import RunmeshClient
from .settings import FlowMeshSettings

__all__ = ["DOCTOR"]

API_KEY_VAR: Final = "FLOWMESH_API_KEY"
PLUGINS_VAR: Final = "FLOWMESH_PLUGINS"
WORKER_NEEDS: Final = (("result", "write"), ("node", "write"))
"""The kind-level checks FlowMesh's workers and supervisors pass with the API key."""
STALE_PENDING_SECONDS: Final = 3600.0


async def _checks(ctx: DoctorContext, settings: FlowMeshSettings) -> Sequence[Check]:
    """`lumid doctor --host flowmesh`: billing, the balance guard, the outbox, the API key."""
    out = [await _billing(settings)]
    if (mistake := guard_without_billing(settings)) is not None:
        out.append(Check("balance guard", Status.WARN, mistake, "LUMID_BALANCE_GUARD"))
    if (note := settings.balance_guard_note) is not None:
        out.append(Check("balance guard", Status.WARN, note, "LUMID_BALANCE_GUARD"))
    if ctx.db is not None:
        out.append(await _outbox(ctx))
    elif ctx.db_not_created:
        out.append(Check("billing outbox", Status.OK, "empty (no database yet: nothing queued)"))
    out.append(await _api_key(ctx))
    return out


async def _billing(settings: FlowMeshSettings) -> Check:
    base = settings.runmesh_billing_base_url
    if not settings.billing_enabled:
        if base is None and not settings.bridge_secret:
            return Check(
                "billing",
                Status.OK,
                "off (RUNMESH_BILLING_BASE_URL and FLOWMESH_BRIDGE_SECRET "
                "are empty): usage is not billed",
            )
        var = "FLOWMESH_BRIDGE_SECRET" if base is not None else "RUNMESH_BILLING_BASE_URL"
        return Check(
            "billing",
            Status.WARN,
            f"off because {settings.billing_off_reason}, though the other billing "
            "variable is set: usage is not billed",
            var,
        )
    assert base is not None
    client = RunmeshClient(
        base,
        settings.bridge_secret,
        delivery_concurrency=1,
        guard_timeout=settings.lumid_billing_timeout_seconds,
    )
    try:
        probe = await client.probe()
    finally:
        await client.aclose()
    if probe.ok:
        return Check(
            "billing",
            Status.OK,
            f"Runmesh at {redact_url(base)}: reachable, bridge secret accepted",
            "RUNMESH_BILLING_BASE_URL",
        )
    return Check(
        "billing",
        Status.FAIL,
        f"RUNMESH_BILLING_BASE_URL={redact_url(base)}: {probe.detail}",
        probe.variable,
    )


async def _outbox(ctx: DoctorContext) -> Check:
    assert ctx.db is not None
    if not isinstance(ctx.db, Database):  # the shared PostgreSQL store (LUMID_DATABASE_URL)
        from lumid_core.pg import PgOutbox

        stats = await PgOutbox(ctx.db, BILLING_SINK).stats()
    else:
        tables = getattr(ctx.db, "tables", None)  # a read-only open says what is there
        if tables is not None and "outbox" not in tables:
            return Check(
                "billing outbox",
                Status.OK,
                "none yet (an older schema: the server adds it on its next start)",
            )
        stats = await Outbox(ctx.db, BILLING_SINK).stats()
    summary = (
        f"{stats.pending} pending, {stats.held} held (no email yet), "
        f"{stats.delivered} delivered, {stats.dead} dead"
    )
    if stats.dead:
        return Check(
            "billing outbox",
            Status.WARN,
            f"{summary}: see `lumid billing ls --dead`, then `lumid billing retry`",
        )
    age = stats.oldest_pending_age_seconds
    if age is not None and age > STALE_PENDING_SECONDS:
        return Check(
            "billing outbox",
            Status.WARN,
            f"{summary}; the oldest pending row is {age / 3600:.1f} h old (is Runmesh down?)",
        )
    return Check("billing outbox", Status.OK, summary)


async def _api_key(ctx: DoctorContext) -> Check:
    token = ctx.environ.get(API_KEY_VAR, "").strip()
    if not token:
        return Check(
            "api key",
            Status.WARN,
            f"{API_KEY_VAR} is not set: FlowMesh's workers have no lum.id credential and the "
            "server falls back to a default admin system principal",
            API_KEY_VAR,
        )
    limit = ctx.settings.lumid_max_token_bytes
    if len(token.encode()) > limit:
        return Check(
            "api key",
            Status.FAIL,
            f"{API_KEY_VAR} is longer than LUMID_MAX_TOKEN_BYTES ({limit}): the plugin "
            "refuses such tokens, so FlowMesh would fall back to a default admin",
            API_KEY_VAR,
        )
    if not ctx.lumid_ok:
        return Check(
            "api key",
            Status.FAIL,
            f"{API_KEY_VAR} cannot be checked: lum.id did not answer (see the lum.id line)",
            API_KEY_VAR,
        )
    seen = await ctx.introspect(token)
    if seen.error is not None:
        return Check(
            "api key",
            Status.FAIL,
            f"{API_KEY_VAR} cannot be checked: lum.id {seen.error}",
            API_KEY_VAR,
        )
    if seen.principal is None:
        return Check(
            "api key",
            Status.FAIL,
            f"{API_KEY_VAR} does not resolve at lum.id ({seen.inactive_reason}): FlowMesh "
            "would silently fall back to a default admin system principal",
            API_KEY_VAR,
        )
    scopes = seen.principal.scopes
    policy = FLOWMESH_POLICY
    missing = [
        (kind, action)
        for kind, action in WORKER_NEEDS
        if not (policy.is_admin(scopes) or policy.scope_allows(scopes, kind, action))
    ]
    who = f"{API_KEY_VAR} resolves to {seen.principal.principal_id}"
    if missing:
        needs = "; ".join(
            f"{kind}/{action} needs {' or '.join(sorted(policy.kind_scopes[(kind, action)]))}"
            for kind, action in missing
        )
        return Check(
            "api key",
            Status.FAIL,
            f"{who} but its scopes fail what workers need ({needs}, or an admin scope)",
            API_KEY_VAR,
        )
    if token != ctx.environ.get(API_KEY_VAR, ""):
        return Check(
            "api key",
            Status.WARN,
            f"{who} once stripped, but {API_KEY_VAR} has leading or trailing whitespace: "
            "FlowMesh resolves its system principal over the raw value and workers send "
            "it as a header; remove the whitespace",
            API_KEY_VAR,
        )
    return Check(
        "api key",
        Status.OK,
        f"{who}; its scopes pass result/write and node/write (workers can report)",
        API_KEY_VAR,
    )


# (host, label, settings class, policy, plugin-list variable, module, own checks)
DOCTOR: Final = PluginDoctor(
    "flowmesh", "FlowMesh", FlowMeshSettings, FLOWMESH_POLICY, PLUGINS_VAR, PLUGIN, _checks
)
"""The `HostDoctor` the `lumid.doctor` entry point `flowmesh` names."""

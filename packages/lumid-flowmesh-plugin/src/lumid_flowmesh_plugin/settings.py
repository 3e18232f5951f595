"""FlowMesh plugin settings: the core's variables plus Runmesh billing.

Load with `lumid_core.load_settings(FlowMeshSettings)`: a bad value raises
`lumid_core.SettingsError` naming the variable.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr

from lumid_core.credentials import header_secret
from lumid_core.settings import LumidSettings, url_validator

__all__ = ["FlowMeshSettings"]


_OFF_WORDS = frozenset({"off", "0", "false", "no"})


def _guard_word(value: object) -> object:
    # lumid-plugins 0.2.x enabled the guard for `on` (any case) only and read every
    # other value as off. Keep that meaning, so an image swap never changes whether
    # submissions are guarded; a value that looks like something else is reported
    # (`FlowMeshSettings.balance_guard_note`) instead of refusing to start.
    return value.strip().lower() if isinstance(value, str) else value


class FlowMeshSettings(LumidSettings):
    """Environment of the FlowMesh plugin (docs/flowmesh.md lists every variable)."""

    # Receives the bridge secret when billing is on: https://, or loopback http://.
    runmesh_billing_base_url: (
        Annotated[
            str,
            url_validator(
                why=" (the secret goes in FLOWMESH_BRIDGE_SECRET; /billing/... is appended)"
            ),
        ]
        | None
    ) = None
    flowmesh_bridge_secret: Annotated[
        SecretStr | None, header_secret(spaces=True, sent_as="an HTTP header")
    ] = None
    lumid_balance_guard: Annotated[
        str, BeforeValidator(_guard_word), Field(max_length=64, pattern=r"^[ -~]*$")
    ] = "off"
    lumid_billing_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    lumid_billing_concurrency: Annotated[int, Field(ge=1, le=256)] = 16
    lumid_billing_flush_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
    lumid_billing_status_interval_seconds: Annotated[float, Field(ge=1, le=86400)] = 60.0
    lumid_billing_retry_base_seconds: Annotated[float, Field(gt=0, le=3600)] = 1.0
    lumid_billing_retry_max_seconds: Annotated[float, Field(gt=0, le=86400)] = 300.0
    lumid_billing_held_recheck_seconds: Annotated[float, Field(gt=0, le=86400)] = 5.0
    lumid_billing_retention_days: Annotated[float, Field(gt=0, le=3650)] = 30.0
    lumid_balance_guard_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 2.0
    # Shown to callers who run out of credit: a query is fine, credentials are not.
    lumid_topup_url: Annotated[str, url_validator(query=True)] | None = None
    # Sanity bounds of one usage row (beyond -> a dead letter with the reason).
    lumid_billing_max_cost: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)] = Decimal(10000)
    lumid_billing_max_duration_seconds: Annotated[float, Field(gt=0)] = 30 * 86400.0
    lumid_billing_spool_rows: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000

    @property
    def bridge_secret(self) -> str:
        """The bridge secret, or "" when unset or blank."""
        secret = self.flowmesh_bridge_secret
        return "" if secret is None else secret.get_secret_value().strip()

    def credential_urls(self) -> dict[str, str]:
        """The core's, plus the Runmesh URL when the bridge secret is sent to it."""
        urls = super().credential_urls()
        if self.billing_enabled and self.runmesh_billing_base_url is not None:
            urls["RUNMESH_BILLING_BASE_URL"] = self.runmesh_billing_base_url
        return urls

    @property
    def billing_enabled(self) -> bool:
        """Billing is on when both RUNMESH_BILLING_BASE_URL and FLOWMESH_BRIDGE_SECRET are set."""
        return bool(self.runmesh_billing_base_url) and bool(self.bridge_secret)

    @property
    def billing_off_reason(self) -> str | None:
        """Why billing is off (naming the variable), or None when it is on."""
        if not self.runmesh_billing_base_url:
            return "RUNMESH_BILLING_BASE_URL is empty"
        if not self.bridge_secret:
            return "FLOWMESH_BRIDGE_SECRET is empty"
        return None

    @property
    def balance_guard(self) -> str:
        """What LUMID_BALANCE_GUARD means: "on" for `on` (any case), else "off"."""
        return "on" if self.lumid_balance_guard == "on" else "off"

    @property
    def balance_guard_note(self) -> str | None:
        """Why LUMID_BALANCE_GUARD reads as off although it is no spelling of off, or None.

        Every value but `on` means off, as in lumid-plugins 0.2.x.
        """
        word = self.lumid_balance_guard
        if word == "on" or word in _OFF_WORDS or not word:
            return None
        return (
            f"LUMID_BALANCE_GUARD={word!r} reads as off (as in lumid-plugins 0.2.x, every "
            "value but 'on' is off): write on to guard submissions, or off"
        )

    @property
    def guard_enabled(self) -> bool:
        """The balance guard runs: billing is on and LUMID_BALANCE_GUARD is `on`."""
        return self.billing_enabled and self.lumid_balance_guard == "on"

"""FlowMesh plugin settings: the core's variables plus Runmesh billing.

Load with `lumid_core.load_settings(FlowMeshSettings)`: a bad value raises
`lumid_core.SettingsError` naming the variable.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr

from lumid_core.settings import LumidSettings, url_validator

__all__ = ["FlowMeshSettings"]


def _header_safe(value: SecretStr | None) -> SecretStr | None:
    # h11 echoes an illegal header value in its exception message, which would put
    # the secret into retry reasons and log lines; refuse it here, without the value.
    if value is not None and not all(
        c == "\t" or " " <= c <= "~" for c in value.get_secret_value().strip()
    ):
        raise ValueError("must be printable ASCII (it is sent as an HTTP header)")
    return value


_OFF_WORDS = frozenset({"off", "0", "false", "no"})
_AMBIGUOUS = frozenset({"1", "true", "yes", "enabled", "enable"})


def _on_off(value: object) -> object:
    # lumid-plugins 0.2.x enabled the guard for `on` (any case) only and read every
    # other value as off: the spellings of off keep that meaning; a spelling of "on"
    # other than `on` meant off there, so it is refused rather than silently
    # switching the guard on (or staying off) after an upgrade.
    if not isinstance(value, str):
        return value
    word = value.strip().lower()
    if word in _OFF_WORDS:
        return "off"
    if word in _AMBIGUOUS:
        raise ValueError(
            f"{value.strip()!r} is ambiguous (lumid-plugins 0.2.x read it as off): write on or off"
        )
    return word


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
    flowmesh_bridge_secret: Annotated[SecretStr | None, AfterValidator(_header_safe)] = None
    lumid_balance_guard: Annotated[Literal["on", "off"], BeforeValidator(_on_off)] = "off"
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
    def guard_enabled(self) -> bool:
        return self.billing_enabled and self.lumid_balance_guard == "on"

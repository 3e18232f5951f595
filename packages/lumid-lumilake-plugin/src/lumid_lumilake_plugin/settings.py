"""Lumilake's settings: the core's `LumidSettings` plus the remote optimizer's.

Load them with `lumid_core.load_settings(LumilakeSettings)`: a bad value raises
`lumid_core.SettingsError` naming the variable (never echoing a secret).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from lumilake_hook import validate_remote_url
from pydantic import AfterValidator, Field, SecretStr, model_validator

from lumid_core.credentials import header_secret
from lumid_core.settings import INSECURE_HTTP_VAR, LumidSettings, url_validator

__all__ = ["LumilakeSettings"]


def _hook_rule(value: str) -> str:
    # The core's validator ran first (scheme, host, port, parts). Lumilake's own
    # RemoteOptimizer refuses http:// to anything but its loopback names, with no
    # opt-out: refuse it here too, at install, rather than on every job.
    try:
        return validate_remote_url(value)
    except ValueError:
        raise ValueError(
            "must be https://, or http:// to a loopback host only (Lumilake's "
            f"RemoteOptimizer refuses anything else, even with {INSECURE_HTTP_VAR})"
        ) from None


class LumilakeSettings(LumidSettings):
    """Environment of the Lumilake plugin (docs/lumilake.md lists every variable)."""

    lumilake_remote_optimizer_url: (
        Annotated[
            str,
            url_validator(why=" (the service token is LUMILAKE_RUNTIME_TOKEN)"),
            AfterValidator(_hook_rule),
        ]
        | None
    ) = None
    """Base URL of a remote Lumilake whose optimizers this server offers; unset = off."""

    lumilake_runtime_token: Annotated[
        SecretStr | None, header_secret(spaces=False, sent_as="a bearer")
    ] = None
    """Lumilake's service credential: sent only with the install-time catalog request."""

    lumilake_remote_optimizer_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 300.0
    """Deadline of one whole remote schedule request (scheduling can be slow)."""

    lumilake_optimizer_catalog_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Deadline of the whole catalog request made at install (its reply is capped at
    LUMID_MAX_REPLY_BYTES)."""

    lumilake_remote_optimizer_max_reply_bytes: Annotated[
        int, Field(ge=1024, le=1024 * 1_048_576)
    ] = 32 * 1_048_576
    """Cap on one schedule reply (a worker assignment for a large graph)."""

    def credential_urls(self) -> dict[str, str]:
        """The core's, plus the optimizer URL (it receives bearers)."""
        urls = super().credential_urls()
        if self.lumilake_remote_optimizer_url is not None:
            urls["LUMILAKE_REMOTE_OPTIMIZER_URL"] = self.lumilake_remote_optimizer_url
        return urls

    lumid_lumilake_acl_db_path: Path | None = None
    """lumid-plugins 0.2.x's name for Lumilake's grant database: used as
    LUMID_ACL_DB_PATH when that is not set, so an upgraded server opens (and
    migrates) the file that holds its grants instead of a new empty one."""

    @property
    def ignored_legacy_db_path(self) -> Path | None:
        """LUMID_LUMILAKE_ACL_DB_PATH when it names another file than the one in use.

        That is when LUMID_ACL_DB_PATH is set too: the old file's 0.2.x grants are
        then neither used nor migrated.
        """
        old = self.lumid_lumilake_acl_db_path
        if old is None or old.expanduser() == self.lumid_acl_db_path.expanduser():
            return None
        return old

    @model_validator(mode="before")
    @classmethod
    def _legacy_db_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("lumid_acl_db_path"):
            old = data.get("lumid_lumilake_acl_db_path")
            if old:
                return {**data, "lumid_acl_db_path": old}
        return data

"""Lumilake's settings: the core's `LumidSettings` plus the remote optimizer's.

Load them with `lumid_core.load_settings(LumilakeSettings)`: a bad value raises
`lumid_core.SettingsError` naming the variable (never echoing a secret).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

from lumilake_hook import validate_remote_url
from pydantic import AfterValidator, Field, SecretStr, model_validator

from lumid_core import LumidSettings

__all__ = ["LumilakeSettings"]


def _remote_url(value: str) -> str:
    try:
        validate_remote_url(value)
    except ValueError as exc:
        reason = str(exc).replace("base_url", "the URL")
        raise ValueError(f"{reason} (https://, or http:// to a loopback host only)") from None
    parsed = urlparse(value.strip())
    if parsed.username is not None or parsed.password is not None:
        raise ValueError("must not carry credentials; the service token is LUMILAKE_RUNTIME_TOKEN")
    if parsed.query or parsed.fragment:
        raise ValueError("must be a base URL without a query or fragment")
    # What httpx would only refuse when the catalog is fetched (with an error that is
    # not an HTTP error, so Lumilake would skip the whole plugin): refuse it here.
    if any(c.isspace() for c in value.strip()):
        raise ValueError("must not contain whitespace")
    if not parsed.hostname:
        raise ValueError("has no host")
    try:
        port = parsed.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("has an invalid port (1-65535)")
    return validate_remote_url(value)


def _bearer_safe(value: SecretStr | None) -> SecretStr | None:
    # Surrounding whitespace (a secret file's newline) is dropped. Anything else that
    # is not visible ASCII cannot be a bearer: h11 would echo it in an error message
    # (logged) and a non-ASCII one would raise outside httpx's errors on entering.
    if value is None:
        return None
    token = value.get_secret_value().strip()
    if not all("!" <= c <= "~" for c in token):
        raise ValueError("must be visible ASCII without spaces (it is sent as a bearer)")
    return SecretStr(token)


class LumilakeSettings(LumidSettings):
    """Environment of the Lumilake plugin (docs/lumilake.md lists every variable)."""

    lumilake_remote_optimizer_url: Annotated[str, AfterValidator(_remote_url)] | None = None
    """Base URL of a remote Lumilake whose optimizers this server offers; unset = off."""

    lumilake_runtime_token: Annotated[SecretStr | None, AfterValidator(_bearer_safe)] = None
    """Lumilake's service credential: sent only with the install-time catalog request."""

    lumilake_remote_optimizer_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 300.0
    """Timeout of one remote schedule request (scheduling can be slow)."""

    lumilake_optimizer_catalog_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Timeout of the catalog request made at install."""

    lumid_lumilake_acl_db_path: Path | None = None
    """lumid-plugins 0.2.x's name for Lumilake's grant database: used as
    LUMID_ACL_DB_PATH when that is not set, so an upgraded server opens (and
    migrates) the file that holds its grants instead of a new empty one."""

    @property
    def ignored_legacy_db_path(self) -> Path | None:
        """LUMID_LUMILAKE_ACL_DB_PATH when it names another file than the one in use
        (LUMID_ACL_DB_PATH is set too): its 0.2.x grants are neither used nor migrated."""
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

"""Settings shared by every host plugin, read from the environment.

Field names are the environment variable names in lower case, so an error can
always name the variable at fault. Plugins subclass `LumidSettings` to add their
own variables and load them through `load_settings`, which turns pydantic's
validation error into a `SettingsError` naming each variable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import AfterValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_ACL_DB_PATH",
    "HttpUrlStr",
    "LumidSettings",
    "SettingsError",
    "load_settings",
]

DEFAULT_ACL_DB_PATH = Path("/app/plugin-data/lumid_acl.sqlite")


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


def _http_url(value: str) -> str:
    url = value.strip()
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise ValueError("must be an http:// or https:// URL")
    host = rest.split("/", 1)[0]
    if not host or any(c.isspace() for c in url):
        raise ValueError("must be an http:// or https:// URL with a host")
    return url.rstrip("/")


HttpUrlStr = Annotated[str, AfterValidator(_http_url)]
"""An http(s) URL, stripped of surrounding blanks and of a trailing slash."""


def _no_userinfo(value: str) -> str:
    if "@" in value.split("://", 1)[-1].split("/", 1)[0]:
        raise ValueError("must not embed credentials (lum.id introspection needs none)")
    if "?" in value or "#" in value:
        raise ValueError("must have no query or fragment (/oauth/introspect is appended)")
    return value


def _database_url(value: SecretStr | None) -> SecretStr | None:
    # A local check (the integrator may move it to lumid_core.urls); never echoes it.
    if value is None:
        return None
    url = value.get_secret_value().strip()
    if not url:
        return None
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("postgresql", "postgres"):
        raise ValueError("must be a postgresql:// (or postgres://) URL, or unset for SQLite")
    if not rest.strip("/") or any(c.isspace() for c in url):
        raise ValueError("must be a postgresql://user:password@host:port/database URL")
    return SecretStr(url)


class LumidSettings(BaseSettings):
    """Environment shared by both hosts (see docs/configuration in the README)."""

    model_config = SettingsConfigDict(
        env_prefix="",
        case_sensitive=False,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    # Logged at install and on every 503: credentials in it would leak.
    lum_id_base_url: Annotated[HttpUrlStr, AfterValidator(_no_userinfo)] = "https://lum.id"
    lumid_org_id: Annotated[str, Field(min_length=1, max_length=200)] = "lumid"
    lumid_acl_db_path: Path = DEFAULT_ACL_DB_PATH
    lumid_introspect_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 5.0
    lumid_introspect_concurrency: Annotated[int, Field(ge=1, le=256)] = 8
    lumid_identity_cache_ttl_seconds: Annotated[float, Field(ge=0, le=3600)] = 60.0
    lumid_identity_cache_size: Annotated[int, Field(ge=0, le=10_000_000)] = 10_000
    lumid_max_token_bytes: Annotated[int, Field(ge=64, le=1_048_576)] = 8192
    # The shared PostgreSQL store (docs/scaling.md); unset: SQLite at LUMID_ACL_DB_PATH.
    # A SecretStr: its password stays out of reprs and error messages.
    lumid_database_url: Annotated[SecretStr | None, AfterValidator(_database_url)] = None
    lumid_database_pool_size: Annotated[int, Field(ge=1, le=1000)] = 10
    lumid_database_statement_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    lumid_outbox_lease_seconds: Annotated[float, Field(ge=1, le=86_400)] = 60.0

    @property
    def introspect_url(self) -> str:
        return f"{self.lum_id_base_url}/oauth/introspect"

    @property
    def database_url(self) -> str | None:
        """LUMID_DATABASE_URL in clear (for the driver only; never log it), or None."""
        url = self.lumid_database_url
        return None if url is None else url.get_secret_value()


def _is_secret(settings_cls: type[BaseSettings], name: str) -> bool:
    field = settings_cls.model_fields.get(name)
    if field is None:
        return True  # unknown: be safe
    annotation: Any = field.annotation
    return annotation is SecretStr or SecretStr in get_args(annotation)


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
_QUERY = re.compile(r"(?P<mark>[?#])\S*")


def _redact_userinfo(value: str) -> str:
    """Hide credentials embedded in a URL (`https://user:pass@host` -> `https://***@host`)
    and its query or fragment, where keys also travel (`?key=...` -> `?***`)."""
    return _QUERY.sub(r"\g<mark>***", _USERINFO.sub(r"\g<scheme>***@", value))


def load_settings[S: LumidSettings](settings_cls: type[S], **overrides: Any) -> S:
    """Read `settings_cls` from the environment, raising `SettingsError` on bad input.

    The message names every variable at fault and, for non-secret variables only,
    the value that was given.
    """
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        problems: list[str] = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = err.get("loc") or ("?",)
            name = str(loc[0])
            reason = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            problems.append(f"{name.upper()}: {reason}")
            if not _is_secret(settings_cls, name):
                raw = os.environ.get(name.upper(), overrides.get(name))
                if raw is not None:
                    problems[-1] += f" (got {_redact_userinfo(str(raw))[:200]!r})"
        raise SettingsError("invalid lum.id plugin configuration: " + "; ".join(problems)) from None

"""Settings shared by every host plugin, read from the environment.

Field names are the environment variable names in lower case, so an error can
always name the variable at fault. Plugins subclass `LumidSettings` to add their
own variables and load them through `load_settings`, which turns pydantic's
validation error into a `SettingsError` naming each variable.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Final, get_args

from pydantic import AfterValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .environ import DEFAULT_ACL_DB_PATH
from .errors import ConfigError, Problem
from .urls import (
    HTTP_SCHEMES,
    POSTGRES_SCHEMES,
    UrlError,
    UrlPartRefused,
    check_url,
    is_cleartext_remote,
    redact_url,
)

__all__ = [
    "DEFAULT_ACL_DB_PATH",
    "INSECURE_HTTP_VAR",
    "HttpUrlStr",
    "LumidSettings",
    "SettingsError",
    "load_settings",
    "url_validator",
]


class SettingsError(ConfigError):
    """The environment failed validation: `problems` names each variable and why."""

    summary = "invalid lum.id plugin configuration"


def url_validator(
    *,
    schemes: Collection[str] = HTTP_SCHEMES,
    credentials: bool = False,
    query: bool = False,
    why: str = "",
) -> AfterValidator:
    """A pydantic validator running `lumid_core.urls.check_url` with these rules.

    It validates a `str` or a `SecretStr` field (e.g. a `postgresql://` URL with a
    password).

    `why` is appended when a refused part (credentials, query, fragment) is present,
    e.g. to say where the credential goes instead.
    """

    def check(value: str) -> str:
        try:
            return check_url(value, schemes=schemes, credentials=credentials, query=query)
        except UrlPartRefused as exc:
            raise ValueError(f"{exc}{why}") from None
        except UrlError as exc:
            raise ValueError(str(exc)) from None

    def validate(value: str | SecretStr | None) -> str | SecretStr | None:
        # A URL holding a password (a database URL) is a SecretStr: checked the same
        # way, kept secret (the error never repeats the value). None: an optional URL unset.
        if value is None:
            return None
        if isinstance(value, SecretStr):
            return SecretStr(check(value.get_secret_value()))
        return check(value)

    return AfterValidator(validate)


HttpUrlStr = Annotated[str, url_validator()]
"""An http(s) URL with no credentials, query or fragment, stripped of surrounding
blanks and of a trailing slash (`lumid_core.urls.check_url`)."""

INSECURE_HTTP_VAR: Final = "LUMID_ALLOW_INSECURE_HTTP"


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

    # Logged at install and on every 503: credentials in it would leak. Receives
    # every caller's bearer: https://, or http:// to a loopback host only.
    lum_id_base_url: Annotated[
        str,
        url_validator(why=" (lum.id introspection needs no credentials, query or fragment)"),
    ] = "https://lum.id"
    lumid_org_id: Annotated[str, Field(min_length=1, max_length=200)] = "lumid"
    lumid_acl_db_path: Path = DEFAULT_ACL_DB_PATH
    lumid_introspect_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 5.0
    lumid_introspect_concurrency: Annotated[int, Field(ge=1, le=256)] = 8
    lumid_identity_cache_ttl_seconds: Annotated[float, Field(ge=0, le=3600)] = 60.0
    lumid_identity_cache_size: Annotated[int, Field(ge=0, le=10_000_000)] = 10_000
    lumid_max_token_bytes: Annotated[int, Field(ge=64, le=1_048_576)] = 8192
    # The shared PostgreSQL store (docs/scaling.md); unset: SQLite at LUMID_ACL_DB_PATH.
    # A SecretStr: its password stays out of reprs and error messages.
    lumid_database_url: Annotated[
        SecretStr | None, url_validator(schemes=POSTGRES_SCHEMES, credentials=True, query=True)
    ] = None
    lumid_database_pool_size: Annotated[int, Field(ge=1, le=1000)] = 10
    lumid_database_statement_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    lumid_outbox_lease_seconds: Annotated[float, Field(ge=1, le=86_400)] = 60.0
    lumid_allow_insecure_http: bool = False
    """Let a credential-carrying URL be http:// to a non-loopback host (a TLS-terminating
    sidecar on a private network). Loud: warned at install and by `lumid doctor`."""
    # Cap on an upstream reply body (lum.id, Runmesh, the optimizer catalog).
    lumid_max_reply_bytes: Annotated[int, Field(ge=1024, le=64 * 1_048_576)] = 262_144
    # Principal emails waiting to be written behind the request (overflow is logged).
    lumid_email_queue_size: Annotated[int, Field(ge=1, le=10_000_000)] = 10_000

    @property
    def introspect_url(self) -> str:
        """Lum.id's introspection endpoint under LUM_ID_BASE_URL."""
        return f"{self.lum_id_base_url}/oauth/introspect"

    @property
    def database_url(self) -> str | None:
        """LUMID_DATABASE_URL in clear (for the driver only; never log it), or None."""
        url = self.lumid_database_url
        return None if url is None else url.get_secret_value()

    def credential_urls(self) -> dict[str, str]:
        """Variable name -> URL for every configured URL that receives a credential.

        Subclasses add theirs (e.g. a billing URL when a bridge secret is sent to it).
        """
        return {"LUM_ID_BASE_URL": self.lum_id_base_url}

    def insecure_http_urls(self) -> list[str]:
        """Variables whose URL would carry a credential in clear text off this host."""
        return [var for var, url in self.credential_urls().items() if is_cleartext_remote(url)]


def _is_secret(settings_cls: type[BaseSettings], name: str) -> bool:
    field = settings_cls.model_fields.get(name)
    if field is None:
        return True  # unknown: be safe
    annotation: Any = field.annotation
    return annotation is SecretStr or SecretStr in get_args(annotation)


def load_settings[S: LumidSettings](settings_cls: type[S], **overrides: Any) -> S:
    """Read `settings_cls` from the environment, raising `SettingsError` on bad input.

    The message names every variable at fault and, for non-secret variables only,
    the value that was given.
    """
    try:
        settings = settings_cls(**overrides)
    except ValidationError as exc:
        problems: list[Problem] = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = err.get("loc") or ("?",)
            name = str(loc[0])
            reason = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            if not _is_secret(settings_cls, name):
                raw = os.environ.get(name.upper(), overrides.get(name))
                if raw is not None:
                    reason += f" (got {redact_url(str(raw))[:200]!r})"
            problems.append(Problem(name.upper(), reason))
        raise SettingsError(problems) from None
    insecure = settings.insecure_http_urls()
    if insecure and not settings.lumid_allow_insecure_http:
        raise SettingsError(
            Problem(
                var,
                "sends a credential in clear text: use https://, or http:// to a "
                f"loopback host only (or set {INSECURE_HTTP_VAR}=1 behind a TLS-terminating "
                "proxy on a private network)",
            )
            for var in insecure
        )
    return settings

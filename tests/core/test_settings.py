from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
from pydantic import SecretStr

from lumid_core import LumidSettings, SettingsError, load_settings
from lumid_core.settings import url_validator
from lumid_core.urls import POSTGRES_SCHEMES


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LUM_ID_BASE_URL", "LUMID_ORG_ID", "LUMID_ACL_DB_PATH"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(LumidSettings)
    assert settings.lum_id_base_url == "https://lum.id"
    assert settings.introspect_url == "https://lum.id/oauth/introspect"
    assert settings.lumid_org_id == "lumid"
    assert settings.lumid_acl_db_path == Path("/app/plugin-data/lumid_acl.sqlite")
    assert settings.lumid_identity_cache_ttl_seconds == 60
    assert settings.lumid_identity_cache_size == 10_000


def test_env_values_and_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUM_ID_BASE_URL", " http://127.0.0.1:9999/ ")
    monkeypatch.setenv("LUMID_ORG_ID", "acme")
    monkeypatch.setenv("LUMID_ACL_DB_PATH", "/tmp/x.sqlite")
    monkeypatch.setenv("LUMID_ORG_ID", "acme")
    settings = load_settings(LumidSettings)
    assert settings.introspect_url == "http://127.0.0.1:9999/oauth/introspect"
    assert settings.lumid_org_id == "acme"
    assert settings.lumid_acl_db_path == Path("/tmp/x.sqlite")


def test_empty_value_means_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUM_ID_BASE_URL", "")
    assert load_settings(LumidSettings).lum_id_base_url == "https://lum.id"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("LUM_ID_BASE_URL", "ftp://lum.id"),
        ("LUM_ID_BASE_URL", "lum.id"),
        ("LUM_ID_BASE_URL", "https://"),
        ("LUMID_INTROSPECT_TIMEOUT_SECONDS", "0"),
        ("LUMID_INTROSPECT_TIMEOUT_SECONDS", "soon"),
        ("LUMID_IDENTITY_CACHE_SIZE", "-1"),
        ("LUMID_INTROSPECT_CONCURRENCY", "0"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(LumidSettings)
    assert var in str(caught.value)
    assert repr(value) in str(caught.value)


class _WithSecret(LumidSettings):
    some_bridge_secret: SecretStr | None = None
    some_limit: int = 1


def test_secret_values_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_BRIDGE_SECRET", "s3cr3t-value")
    settings = load_settings(_WithSecret)
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in str(settings.model_dump())
    assert settings.some_bridge_secret is not None
    assert settings.some_bridge_secret.get_secret_value() == "s3cr3t-value"
    monkeypatch.setenv("SOME_LIMIT", "many")
    with pytest.raises(SettingsError) as caught:
        load_settings(_WithSecret)
    assert "SOME_LIMIT" in str(caught.value)


def test_lum_id_url_with_credentials_is_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The URL is logged at install and on every 503; credentials must never get there.
    monkeypatch.setenv("LUM_ID_BASE_URL", "https://svc:hunter2@lum.id")
    with pytest.raises(SettingsError, match="LUM_ID_BASE_URL") as err:
        load_settings(LumidSettings)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("url", ["https://lum.id/?key=hunter2", "https://lum.id#hunter2"])
def test_lum_id_url_with_a_query_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    # "{url}/oauth/introspect" would land inside the query (a broken config that still
    # starts), and the URL is logged at install and on every 503.
    monkeypatch.setenv("LUM_ID_BASE_URL", url)
    with pytest.raises(SettingsError, match="LUM_ID_BASE_URL") as err:
        load_settings(LumidSettings)
    assert "hunter2" not in str(err.value)


# -- URL settings: one validator (lumid_core.urls), the clear-text rule -------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("http://lum.id:abc", "invalid port"),
        ("http://lum.id:99999", "invalid port"),
        ("http://[::1", "unterminated IPv6"),
        ("http://lum .id", "whitespace"),
    ],
)
def test_bad_lum_id_urls_name_the_variable_and_why(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    monkeypatch.setenv("LUM_ID_BASE_URL", value)
    with pytest.raises(SettingsError) as caught:
        load_settings(LumidSettings)
    assert "LUM_ID_BASE_URL: " in str(caught.value)
    assert reason in str(caught.value)


def test_clear_text_lum_id_is_refused_unless_explicitly_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LUM_ID_BASE_URL", "http://lumid.example.com")
    with pytest.raises(SettingsError, match="LUM_ID_BASE_URL: sends a credential in clear"):
        load_settings(LumidSettings)
    monkeypatch.setenv("LUMID_ALLOW_INSECURE_HTTP", "1")
    settings = load_settings(LumidSettings)
    assert settings.insecure_http_urls() == ["LUM_ID_BASE_URL"]
    for loopback in ("http://localhost:1", "http://127.0.0.1:1", "http://[::1]:1", "https://x.io"):
        monkeypatch.setenv("LUM_ID_BASE_URL", loopback)
        monkeypatch.delenv("LUMID_ALLOW_INSECURE_HTTP", raising=False)
        assert load_settings(LumidSettings).insecure_http_urls() == []


class _WithDatabaseUrl(LumidSettings):
    some_dsn: (
        Annotated[str, url_validator(schemes=POSTGRES_SCHEMES, credentials=True, query=True)] | None
    ) = None
    secret_dsn: (
        Annotated[SecretStr, url_validator(schemes=POSTGRES_SCHEMES, credentials=True, query=True)]
        | None
    ) = None


def test_the_validator_serves_a_postgresql_url_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_DSN", "postgresql://lumid:pw@db.internal:5432/lumid?sslmode=require")
    assert load_settings(_WithDatabaseUrl).some_dsn == (
        "postgresql://lumid:pw@db.internal:5432/lumid?sslmode=require"
    )
    monkeypatch.setenv("SOME_DSN", "postgresql://lumid:pw@db.internal:54321x/lumid")
    with pytest.raises(SettingsError, match="SOME_DSN: has an invalid port") as caught:
        load_settings(_WithDatabaseUrl)
    assert "pw@" not in str(caught.value)
    monkeypatch.setenv("SOME_DSN", "http://db.internal/lumid")
    with pytest.raises(SettingsError, match="SOME_DSN: must be a postgres"):
        load_settings(_WithDatabaseUrl)


def test_a_secret_url_is_validated_and_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_DSN", " postgresql://lumid:hunter2@db:5432/lumid ")
    settings = load_settings(_WithDatabaseUrl)
    assert settings.secret_dsn is not None
    assert settings.secret_dsn.get_secret_value() == "postgresql://lumid:hunter2@db:5432/lumid"
    monkeypatch.setenv("SECRET_DSN", "postgresql://lumid:hunter2@db:99999/lumid")
    with pytest.raises(SettingsError, match="SECRET_DSN: has an invalid port") as caught:
        load_settings(_WithDatabaseUrl)
    assert "hunter2" not in str(caught.value)

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from lumid_core import LumidSettings, SettingsError, load_settings


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

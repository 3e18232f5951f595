"""Lumilake's URL settings: every bearer-carrying URL is https or loopback http."""

from __future__ import annotations

import pytest

import lumid_lumilake_plugin
from lumid_core import SettingsError


def test_lum_id_over_clear_text_http_is_refused(
    lumilake_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUM_ID_BASE_URL", "http://lumid.invalid")
    with pytest.raises(SettingsError, match="LUM_ID_BASE_URL: sends a credential in clear text"):
        lumid_lumilake_plugin.install()


def test_the_opt_out_does_not_cover_the_optimizer_lumilake_itself_refuses(
    lumilake_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMID_ALLOW_INSECURE_HTTP", "1")
    monkeypatch.setenv("LUMILAKE_REMOTE_OPTIMIZER_URL", "http://optimizer.invalid")
    with pytest.raises(SettingsError, match="LUMILAKE_REMOTE_OPTIMIZER_URL") as err:
        lumid_lumilake_plugin.install()
    assert "RemoteOptimizer refuses" in str(err.value)


def test_a_bad_lum_id_port_is_refused_at_install(
    lumilake_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUM_ID_BASE_URL", "http://127.0.0.1:abc")
    with pytest.raises(SettingsError, match="LUM_ID_BASE_URL: has an invalid port"):
        lumid_lumilake_plugin.install()

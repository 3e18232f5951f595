"""install(): configuration errors name the variable; the log line names what is on."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lumid_core import SettingsError
from lumid_fakes import FakeRunmesh
from lumid_flowmesh_plugin import FlowMeshSettings, install
from lumid_flowmesh_plugin.runmesh import RunmeshClient


async def test_bad_guard_value_names_the_variable(
    flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMID_BALANCE_GUARD", "on\x1b[2J")
    with pytest.raises(SettingsError, match="LUMID_BALANCE_GUARD"):
        async with install():
            pass


async def test_bad_runmesh_url_names_the_variable(
    flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNMESH_BILLING_BASE_URL", "ftp://runmesh")
    with pytest.raises(SettingsError, match="RUNMESH_BILLING_BASE_URL"):
        async with install():
            pass


async def test_unwritable_database_names_the_variable(
    flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # /proc refuses new folders even to root, so this is unwritable for everyone.
    monkeypatch.setenv("LUMID_ACL_DB_PATH", "/proc/lumid-plugin-data/acl.sqlite")
    with pytest.raises(RuntimeError, match="LUMID_ACL_DB_PATH"):
        async with install():
            pass


async def test_database_path_that_is_a_directory_names_the_variable(
    flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Unwritable even for root: the path is an existing directory.
    monkeypatch.setenv("LUMID_ACL_DB_PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="LUMID_ACL_DB_PATH"):
        async with install():
            pass


async def test_log_line_billing_off(
    flowmesh_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FLOWMESH_BRIDGE_SECRET", "")
    with caplog.at_level(logging.INFO, "lumid_flowmesh_plugin"):
        async with install() as plugin:
            assert plugin.usage_sinks == ()
            assert plugin.submission_guards == ()
            assert plugin.billing is None
    (line,) = [r.getMessage() for r in caplog.records if "hooks on" in r.getMessage()]
    assert "off: billing (FLOWMESH_BRIDGE_SECRET is empty)" in line
    assert "supplier" in line


@pytest.mark.parametrize(
    ("unset", "expected"),
    [
        ("FLOWMESH_BRIDGE_SECRET", "only half configured: FLOWMESH_BRIDGE_SECRET is empty"),
        ("RUNMESH_BILLING_BASE_URL", "only half configured: RUNMESH_BILLING_BASE_URL is empty"),
    ],
)
async def test_half_configured_billing_is_a_warning(
    flowmesh_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    unset: str,
    expected: str,
) -> None:
    monkeypatch.setenv(unset, "")
    with caplog.at_level(logging.INFO, "lumid_flowmesh_plugin"):
        async with install():
            pass
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert expected in warning.getMessage()
    assert flowmesh_env["FLOWMESH_BRIDGE_SECRET"] not in caplog.text


async def test_guard_on_without_billing_is_a_warning(
    flowmesh_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FLOWMESH_BRIDGE_SECRET", "")
    monkeypatch.setenv("RUNMESH_BILLING_BASE_URL", "")
    with caplog.at_level(logging.INFO, "lumid_flowmesh_plugin"):
        async with install():
            pass
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "LUMID_BALANCE_GUARD=on has no effect" in warning.getMessage()


async def test_log_line_billing_on_has_no_secret(
    flowmesh_env: dict[str, str],
    fake_runmesh: FakeRunmesh,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with install():
            pass
    (line,) = [r.getMessage() for r in caplog.records if "hooks on" in r.getMessage()]
    assert f"billing (Runmesh at {fake_runmesh.url})" in line
    assert "balance guard" in line
    assert fake_runmesh.secret not in caplog.text


def test_settings_repr_hides_the_secret(flowmesh_env: dict[str, str]) -> None:
    from lumid_core import load_settings

    settings = load_settings(FlowMeshSettings)
    assert settings.billing_enabled
    assert flowmesh_env["FLOWMESH_BRIDGE_SECRET"] not in repr(settings)
    assert flowmesh_env["FLOWMESH_BRIDGE_SECRET"] not in str(settings.model_dump())


async def test_probe(fake_runmesh: FakeRunmesh) -> None:
    good = RunmeshClient(fake_runmesh.url, fake_runmesh.secret)
    bad = RunmeshClient(fake_runmesh.url, "wrong-secret-value")
    try:
        result = await good.probe()
        assert result.ok, result.detail
        result = await bad.probe()
        assert not result.ok
        assert result.variable == "FLOWMESH_BRIDGE_SECRET"
        assert "FLOWMESH_BRIDGE_SECRET" in result.detail
        assert "wrong-secret-value" not in result.detail
        fake_runmesh.mode = "down"
        result = await good.probe()
        assert not result.ok
        assert result.variable == "RUNMESH_BILLING_BASE_URL"
        assert fake_runmesh.url in result.detail
    finally:
        await good.aclose()
        await bad.aclose()
    assert fake_runmesh.entry_calls() == []  # the probe never posts an entry


async def test_runmesh_url_with_credentials_is_refused(
    flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNMESH_BILLING_BASE_URL", "https://bridge:hunter2@runmesh.example/api")
    with pytest.raises(SettingsError, match="RUNMESH_BILLING_BASE_URL") as err:
        async with install():
            pass
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("secret", ["abc\ndef-hunter2", "abc\rdef-hunter2", "abcé-hunter2"])
async def test_bridge_secret_unusable_in_a_header_is_refused_without_echoing_it(
    flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    # h11 puts an illegal header value into its exception message ("Illegal header
    # value b'...'"), which would land in every retry reason and log line.
    monkeypatch.setenv("FLOWMESH_BRIDGE_SECRET", secret)
    with pytest.raises(SettingsError, match="FLOWMESH_BRIDGE_SECRET") as err:
        async with install():
            pass
    assert "hunter2" not in str(err.value)


async def test_runmesh_url_with_a_query_is_refused_without_echoing_it(
    flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # "{base}/billing/flowmesh-entry" would land inside the query.
    monkeypatch.setenv("RUNMESH_BILLING_BASE_URL", "https://runmesh.example/api?key=hunter2")
    with pytest.raises(SettingsError, match="RUNMESH_BILLING_BASE_URL") as err:
        async with install():
            pass
    assert "hunter2" not in str(err.value)

"""URL settings through install(): a bad or clear-text URL never reaches a hook."""

from __future__ import annotations

import logging

import pytest

from lumid_core import SettingsError
from lumid_fakes import FakeLumId
from lumid_flowmesh_plugin import install

LOG = logging.getLogger("tests.url_settings")

BAD = [
    "http://lum.id:abc",
    "http://lum.id:99999",
    "http://[::1",
    "http://127.0.0.1:0",
    "http://999.0.0.1",
    "http://lum id",
    "https://user:pw@lum.id",
    "https://lum.id/?k=v",
]


@pytest.mark.parametrize("url", BAD)
async def test_a_bad_lum_id_url_fails_install_naming_the_variable(
    flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("LUM_ID_BASE_URL", url)
    with pytest.raises(SettingsError, match="LUM_ID_BASE_URL") as caught:
        async with install():
            pytest.fail("installed with a bad LUM_ID_BASE_URL")
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("var", "url"),
    [
        ("RUNMESH_BILLING_BASE_URL", "http://127.0.0.1:abc"),
        ("RUNMESH_BILLING_BASE_URL", "http://runmesh.example:70000/api"),
        ("LUMID_TOPUP_URL", "https://pay.example:abc/topup"),
        ("LUMID_TOPUP_URL", "https://user:pw@pay.example/topup"),
    ],
)
async def test_bad_billing_urls_fail_install_naming_the_variable(
    flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, var: str, url: str
) -> None:
    monkeypatch.setenv(var, url)
    with pytest.raises(SettingsError, match=var):
        async with install():
            pytest.fail(f"installed with a bad {var}")


async def test_topup_url_may_carry_a_query(
    flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMID_TOPUP_URL", "https://pay.example/topup?org=acme")
    async with install() as bindings:
        assert bindings.submission_guards


@pytest.mark.parametrize(
    ("var", "url"),
    [
        ("LUM_ID_BASE_URL", "http://lumid.invalid"),
        ("RUNMESH_BILLING_BASE_URL", "http://runmesh.invalid/api"),
    ],
)
async def test_clear_text_credentials_are_refused_at_install(
    flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, var: str, url: str
) -> None:
    monkeypatch.setenv(var, url)
    with pytest.raises(SettingsError) as caught:
        async with install():
            pytest.fail("installed with a clear-text credential URL")
    assert f"{var}: sends a credential in clear text" in str(caught.value)
    assert "LUMID_ALLOW_INSECURE_HTTP" in str(caught.value)


async def test_runmesh_over_http_without_billing_carries_no_secret(
    flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNMESH_BILLING_BASE_URL", "http://runmesh.invalid/api")
    monkeypatch.setenv("FLOWMESH_BRIDGE_SECRET", "")
    async with install() as bindings:
        assert bindings.billing is None


async def test_the_opt_out_is_loud_in_the_install_log(
    flowmesh_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("LUM_ID_BASE_URL", "http://lumid.invalid")
    monkeypatch.setenv("RUNMESH_BILLING_BASE_URL", "http://runmesh.invalid/api")
    monkeypatch.setenv("LUMID_ALLOW_INSECURE_HTTP", "1")
    with caplog.at_level(logging.WARNING):
        async with install():
            pass
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for var in ("LUM_ID_BASE_URL", "RUNMESH_BILLING_BASE_URL"):
        assert any(var in m and "clear text" in m for m in warned), warned


async def test_an_accepted_unusual_url_reaches_lum_id(
    flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, fake_lumid: FakeLumId
) -> None:
    """The request path: what the validator lets through, a hook can call."""
    port = fake_lumid.url.rsplit(":", 1)[1]
    monkeypatch.setenv("LUM_ID_BASE_URL", f" HTTP://LocalHost:{port}/ ")
    token = fake_lumid.add_token("alice", scopes=["flowmesh:workflows:write"])
    async with install() as bindings:
        (identity,) = bindings.identity_providers
        principal = await identity.resolve(token, LOG)
    assert principal is not None
    assert principal.principal_id == "alice"

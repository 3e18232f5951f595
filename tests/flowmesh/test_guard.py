"""The balance guard against a real fake Runmesh: 402 when short, fail open otherwise."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest
from fastapi import HTTPException
from lumid_hooks import PrincipalContext, SubmissionGuard

from lumid_fakes import FakeLumId, FakeRunmesh
from lumid_flowmesh_plugin import FlowMeshBindings, install


async def resolve(
    plugin: FlowMeshBindings, fake_lumid: FakeLumId, sub: str, email: str | None
) -> PrincipalContext:
    token = fake_lumid.add_token(sub, scopes=["flowmesh:workflows:write"], email=email)
    principal = await plugin.identity_providers[0].resolve(token, logging.getLogger("tests"))
    assert principal is not None
    return principal


def guard_of(plugin: FlowMeshBindings) -> SubmissionGuard:
    (guard,) = plugin.submission_guards
    assert guard.name == "lumid_flowmesh_plugin.balance_guard"
    return guard


async def test_sufficient_and_insufficient(
    plugin: FlowMeshBindings,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    logger: logging.Logger,
) -> None:
    fake_runmesh.add_user("rich@example.com", "3.50")
    fake_runmesh.add_user("poor@example.com", "0.001")
    guard = guard_of(plugin)
    await guard.check(await resolve(plugin, fake_lumid, "rich", "rich@example.com"), logger)
    with pytest.raises(HTTPException) as denied:
        await guard.check(await resolve(plugin, fake_lumid, "poor", "poor@example.com"), logger)
    assert denied.value.status_code == 402
    assert "0.001" in denied.value.detail
    assert "https://runmesh.example/billing" in denied.value.detail
    bodies = [c.json() for c in fake_runmesh.balance_calls()]
    assert bodies == [
        {"userEmail": "rich@example.com", "requiredAmount": "0.01"},
        {"userEmail": "poor@example.com", "requiredAmount": "0.01"},
    ]
    assert all(c.headers["x-bridge-secret"] == fake_runmesh.secret for c in fake_runmesh.requests)


async def test_skips_unknown_email_and_other_orgs(
    plugin: FlowMeshBindings,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    logger: logging.Logger,
) -> None:
    guard = guard_of(plugin)
    await guard.check(await resolve(plugin, fake_lumid, "nomail", None), logger)
    stranger = PrincipalContext(
        principal_id="x", org_id="elsewhere", external_id="x", principal_type="user", scopes=[]
    )
    await guard.check(stranger, logger)
    assert fake_runmesh.balance_calls() == []


@pytest.mark.parametrize(
    ("mode", "setup"),
    [
        ("down", {}),
        ("hang", {}),
        ("slow", {"delay": 1.5}),
        ("status", {"status_code": 500}),
        ("status", {"status_code": 401}),
        ("envelope", {"envelope_code": 500, "envelope_msg": "unknown user"}),
    ],
)
async def test_fails_open(
    plugin: FlowMeshBindings,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    setup: dict[str, object],
) -> None:
    fake_runmesh.add_user("poor@example.com", "0")
    principal = await resolve(plugin, fake_lumid, "poor", "poor@example.com")
    fake_runmesh.mode = mode
    for key, value in setup.items():
        setattr(fake_runmesh, key, value)
    with caplog.at_level(logging.WARNING):
        await guard_of(plugin).check(principal, logger)  # allowed despite balance 0
    fake_runmesh.released.set()
    assert "allowing the submission" in caplog.text
    assert fake_runmesh.secret not in caplog.text
    assert len(fake_runmesh.balance_calls()) == 1


async def test_wrong_secret_fails_open(
    flowmesh_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FLOWMESH_BRIDGE_SECRET", "not-the-secret-abcdef")
    fake_runmesh.add_user("poor@example.com", "0")
    async with install() as plugin:
        principal = await resolve(plugin, fake_lumid, "poor", "poor@example.com")
        with caplog.at_level(logging.WARNING):
            await guard_of(plugin).check(principal, logger)
    assert "FLOWMESH_BRIDGE_SECRET" in caplog.text
    assert "not-the-secret-abcdef" not in caplog.text


async def test_guard_off(flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMID_BALANCE_GUARD", "OFF")
    async with install() as plugin:
        assert plugin.submission_guards == ()
        assert len(plugin.usage_sinks) == 1


async def test_fails_open_when_the_email_cannot_be_read(
    plugin: FlowMeshBindings,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    flowmesh_env: dict[str, str],
    logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A local database fault must not turn POST /workflows into a 500.
    fake_runmesh.add_user("poor@example.com", "0")
    principal = await resolve(plugin, fake_lumid, "poor", "poor@example.com")
    other = sqlite3.connect(flowmesh_env["LUMID_ACL_DB_PATH"], isolation_level=None)
    try:
        for _ in range(500):  # the email is written behind the login: wait for it
            if other.execute("SELECT 1 FROM principals").fetchone() is not None:
                break
            await asyncio.sleep(0.01)
        other.execute("ALTER TABLE principals RENAME TO principals_away")
        with caplog.at_level(logging.WARNING):
            await guard_of(plugin).check(principal, logger)  # allowed despite balance 0
        other.execute("ALTER TABLE principals_away RENAME TO principals")
    finally:
        other.close()
    assert "allowing the submission" in caplog.text
    assert fake_runmesh.balance_calls() == []

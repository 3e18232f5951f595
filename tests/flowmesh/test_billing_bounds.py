"""Cost sign and magnitude sanity (issue 16): nonsense is parked, an operator replays it."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lumid_fakes import FakeLumId, FakeRunmesh
from lumid_flowmesh_plugin import install
from lumid_flowmesh_plugin.settings import FlowMeshSettings


async def test_negative_huge_costs_and_durations_are_dead_letters_until_replayed(
    flowmesh_env: dict[str, str],
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    db_path: Path,
    usage_row: Callable[..., Any],
    logger: logging.Logger,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LUMID_BILLING_MAX_COST", "500")
    fake_runmesh.add_user("alice@example.com", "100")
    async with install() as plugin:
        token = fake_lumid.add_token("alice", email="alice@example.com")
        assert await plugin.identity_providers[0].resolve(token, logger) is not None
        billing = plugin.billing
        assert billing is not None
        (sink,) = plugin.usage_sinks
        await sink.emit(
            [
                usage_row("t-credit", cost=Decimal(-1000)),
                usage_row("t-huge", cost=Decimal("1E+30")),
                usage_row("t-over", cost=Decimal("500.01")),
                usage_row("t-forever", runtime_sec=1e300),
                usage_row("t-fine", cost=Decimal(500)),
            ],
            logger,
        )
        assert await billing.drain(10)
        assert list(fake_runmesh.entries) == ["t-fine"]  # nothing else reached Runmesh
        dead = {e.key: e.reason or "" for e in await billing.outbox.entries(state="dead")}
        assert sorted(dead) == ["t-credit", "t-forever", "t-huge", "t-over"]
        assert "negative cost -1000" in dead["t-credit"]
        assert "LUMID_BILLING_MAX_COST=500" in dead["t-huge"]
        assert "LUMID_BILLING_MAX_COST=500" in dead["t-over"]
        assert "LUMID_BILLING_MAX_DURATION_SECONDS" in dead["t-forever"]
        # The operator looked and approves the credit: `lumid billing retry` delivers it.
        replay = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "lumid_core.cli", "billing", "retry", "--task", "t-credit"],
            env={"LUMID_ACL_DB_PATH": str(db_path), "PATH": ""},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert replay.returncode == 0, replay.stderr
        async with asyncio.timeout(15):
            while "t-credit" not in fake_runmesh.entries:  # noqa: ASYNC110 (a fake's thread)
                await asyncio.sleep(0.02)
        assert fake_runmesh.entries["t-credit"]["cost"] == "-1000"
        assert fake_runmesh.balances["alice@example.com"] == Decimal(100) - 500 + 1000
        assert await billing.drain(10)
        replayed = await billing.outbox.entry("t-credit")
        assert replayed is not None
        assert replayed.state == "delivered"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LUMID_BILLING_MAX_COST", "-1"),
        ("LUMID_BILLING_MAX_COST", "NaN"),
        ("LUMID_BILLING_MAX_DURATION_SECONDS", "0"),
    ],
)
def test_bounds_must_be_positive(
    name: str, value: str, flowmesh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lumid_core import SettingsError, load_settings

    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings(FlowMeshSettings)

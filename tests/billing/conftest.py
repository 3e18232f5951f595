"""Billing fixtures: the FlowMesh plugin environment, pointed at the fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from flowmesh_hook import UsageRow

from lumid_fakes import FakeRunmesh
from lumid_flowmesh_plugin import FlowMeshBindings, install


@pytest.fixture
def flowmesh_env(
    core_env: dict[str, str], fake_runmesh: FakeRunmesh, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    env = {
        **core_env,
        "RUNMESH_BILLING_BASE_URL": fake_runmesh.url,
        "FLOWMESH_BRIDGE_SECRET": fake_runmesh.secret,
        "LUMID_BALANCE_GUARD": "on",
        "LUMID_BALANCE_GUARD_TIMEOUT_SECONDS": "0.5",
        "LUMID_BILLING_TIMEOUT_SECONDS": "1",
        "LUMID_BILLING_FLUSH_SECONDS": "1",
        "LUMID_BILLING_RETRY_BASE_SECONDS": "0.02",
        "LUMID_BILLING_RETRY_MAX_SECONDS": "0.1",
        "LUMID_BILLING_HELD_RECHECK_SECONDS": "0.05",
        "LUMID_TOPUP_URL": "https://runmesh.example/billing",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
async def plugin(flowmesh_env: dict[str, str]) -> AsyncIterator[FlowMeshBindings]:
    async with install() as bindings:
        yield bindings


type RowFactory = Callable[..., UsageRow]


@pytest.fixture
def usage_row() -> RowFactory:
    def make(
        task_id: str,
        principal_id: str = "alice",
        cost: Decimal = Decimal("0.25"),
        *,
        runtime_sec: float = 12.4,
        cost_per_hour: float = 1.5,
        task_status: str = "succeeded",
        org_id: str = "lumid",
    ) -> UsageRow:
        return UsageRow(
            org_id=org_id,
            principal_id=principal_id,
            supplier_id="ns-a",
            occurred_at=datetime(2026, 11, 22, 1, 0, tzinfo=UTC),
            cost=cost,
            task_id=task_id,
            runtime_sec=runtime_sec,
            cost_per_hour=cost_per_hour,
            task_status=task_status,
        )

    return make

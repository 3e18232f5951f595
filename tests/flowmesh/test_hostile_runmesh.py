"""A Runmesh that drips bytes or sends a huge body: a prompt Retry / fail-open."""

from __future__ import annotations

import time

import pytest

from lumid_core.outbox import Retry
from lumid_fakes import FakeRunmesh
from lumid_flowmesh_plugin.runmesh import RunmeshClient, RunmeshUnavailable

ENTRY = {
    "userEmail": "a@example.com",
    "userSub": "u-a",
    "taskId": "t-1",
    "workflowId": "w-1",
    "cost": "0.5",
    "durationSec": 3,
    "costPerHour": 1.0,
    "taskStatus": "completed",
}


@pytest.mark.parametrize("delivery", ["drip-body", "drip-headers"])
async def test_a_dripping_runmesh_is_a_retry_within_the_timeout(
    fake_runmesh: FakeRunmesh, delivery: str
) -> None:
    # Before: 34.6 s at a 2 s timeout, each read being quick enough.
    fake_runmesh.add_user("a@example.com", "10")
    fake_runmesh.delivery = delivery
    client = RunmeshClient(
        fake_runmesh.url, fake_runmesh.secret, delivery_timeout=2, guard_timeout=2
    )
    try:
        started = time.monotonic()
        outcome = await client.post_entry(ENTRY)
        assert time.monotonic() - started < 5
        assert isinstance(outcome, Retry)
        assert "no complete reply within 2s" in outcome.reason
        started = time.monotonic()
        with pytest.raises(RunmeshUnavailable, match="no complete reply within 2s"):
            await client.check_balance("a@example.com")
        assert time.monotonic() - started < 5
        probe = await client.probe()
        assert not probe.ok
        assert fake_runmesh.secret not in probe.detail
    finally:
        await client.aclose()


@pytest.mark.parametrize("delivery", ["huge", "huge-declared"])
async def test_a_huge_runmesh_reply_is_cut_off(fake_runmesh: FakeRunmesh, delivery: str) -> None:
    fake_runmesh.add_user("a@example.com", "10")
    fake_runmesh.delivery = delivery
    client = RunmeshClient(fake_runmesh.url, fake_runmesh.secret, delivery_timeout=20)
    try:
        started = time.monotonic()
        outcome = await client.post_entry(ENTRY)
        assert isinstance(outcome, Retry)  # idempotent on taskId: safe to resend
        assert "byte cap" in outcome.reason
        with pytest.raises(RunmeshUnavailable, match="byte cap"):
            await client.check_balance("a@example.com")
        assert time.monotonic() - started < 10
    finally:
        await client.aclose()

"""Billing that loses nothing, against a real fake Runmesh on 127.0.0.1 (issue 6)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from fastapi import HTTPException
from lumid_hooks import ResourceRef

from lumid_core.outbox import OutboxEntry
from lumid_fakes import FakeLumId, FakeRunmesh
from lumid_flowmesh_plugin import FlowMeshBindings, RunmeshBilling, install

RowFactory = Callable[..., Any]


def billing_of(bindings: FlowMeshBindings) -> RunmeshBilling:
    assert bindings.billing is not None
    return bindings.billing


async def known(plugin: FlowMeshBindings, fake_lumid: FakeLumId, sub: str, email: str) -> None:
    """Let identity see `sub` with `email` (as a request with their token would)."""
    token = fake_lumid.add_token(sub, scopes=["flowmesh:workflows:write"], email=email)
    (identity,) = plugin.identity_providers
    assert await identity.resolve(token, logging.getLogger("tests")) is not None


async def wait_for(predicate: Callable[[], Any], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 (polls a fake server's thread)
            await asyncio.sleep(0.01)


async def by_key(billing: RunmeshBilling) -> dict[str, OutboxEntry]:
    return {e.key: e for e in await billing.outbox.entries(limit=1000)}


async def test_delivers_the_exact_entry(
    plugin: FlowMeshBindings,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
) -> None:
    fake_runmesh.add_user("alice@example.com", "10")
    await known(plugin, fake_lumid, "alice", "alice@example.com")
    (registrar,) = plugin.resource_registrars
    alice = await plugin.identity_providers[0].resolve(
        fake_lumid.add_token("alice", email="alice@example.com"), logger
    )
    assert alice is not None
    await registrar.register(
        alice, ResourceRef(kind="task", id="t1", metadata={"workflow_id": "wf-9"}), logger
    )
    cost = Decimal("0.10000000000000000000000000001")
    (sink,) = plugin.usage_sinks
    await sink.emit(
        [
            usage_row("t1", cost=cost, runtime_sec=12.6, cost_per_hour=2.25),
            usage_row("t-unregistered", cost=Decimal("1E-7"), runtime_sec=0.2),
        ],
        logger,
    )
    billing = billing_of(plugin)
    assert await billing.drain(10)
    (call,) = [c for c in fake_runmesh.entry_calls() if c.json()["taskId"] == "t1"]
    assert call.headers["x-bridge-secret"] == fake_runmesh.secret
    assert call.json() == {
        "userEmail": "alice@example.com",
        "userSub": "alice",
        "taskId": "t1",
        "workflowId": "wf-9",
        "cost": "0.10000000000000000000000000001",
        "durationSec": 13,
        "costPerHour": 2.25,
        "taskStatus": "succeeded",
    }
    other = fake_runmesh.entries["t-unregistered"]
    assert other["workflowId"] == ""  # documented: unknown workflow -> ""
    assert other["cost"] == "1E-7"
    assert other["durationSec"] == 0
    assert fake_runmesh.balances["alice@example.com"] == Decimal(10) - cost - Decimal("1E-7")
    stats = await billing.stats()
    assert (stats.pending, stats.held, stats.delivered, stats.dead) == (0, 0, 2, 0)


async def test_outage_then_recovery_delivers_each_row_once(
    plugin: FlowMeshBindings,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
) -> None:
    fake_runmesh.add_user("alice@example.com", "100")
    await known(plugin, fake_lumid, "alice", "alice@example.com")
    billing = billing_of(plugin)
    fake_runmesh.mode = "down"
    (sink,) = plugin.usage_sinks
    for i in range(20):
        await sink.emit([usage_row(f"t{i}", cost=Decimal("1.5"))], logger)
    await wait_for(lambda: len(fake_runmesh.entry_calls()) >= 3)  # retried during the outage
    assert (await billing.stats()).pending == 20
    fake_runmesh.mode = "status"  # then a 503 phase
    calls = len(fake_runmesh.entry_calls())
    await wait_for(lambda: len(fake_runmesh.entry_calls()) > calls)
    assert (await billing.stats()).pending == 20
    fake_runmesh.mode = "ok"
    assert await billing.drain(20)
    assert sorted(fake_runmesh.entries) == sorted(f"t{i}" for i in range(20))
    assert fake_runmesh.duplicates == 0
    assert fake_runmesh.balances["alice@example.com"] == Decimal(100) - 20 * Decimal("1.5")
    stats = await billing.stats()
    assert (stats.pending, stats.delivered, stats.dead) == (0, 20, 0)
    assert all(e.attempts >= 1 for e in (await by_key(billing)).values())


async def test_restart_during_an_outage(
    flowmesh_env: dict[str, str],
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
) -> None:
    fake_runmesh.add_user("alice@example.com", "100")
    fake_runmesh.mode = "down"
    async with install() as first:
        await known(first, fake_lumid, "alice", "alice@example.com")
        await first.usage_sinks[0].emit([usage_row("t1"), usage_row("t2")], logger)
        await wait_for(lambda: len(fake_runmesh.entry_calls()) >= 1)
    # Shut down mid-outage: the bounded flush gave up, the rows stayed.
    assert fake_runmesh.entries == {}
    fake_runmesh.mode = "ok"
    async with install() as second:
        billing = billing_of(second)
        assert await billing.drain(10)
        assert sorted(fake_runmesh.entries) == ["t1", "t2"]
        assert (await billing.stats()).delivered == 2
    assert fake_runmesh.duplicates == 0


async def test_emit_returns_while_runmesh_hangs_and_guard_is_not_queued(
    flowmesh_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
) -> None:
    monkeypatch.setenv("LUMID_BILLING_CONCURRENCY", "2")
    monkeypatch.setenv("LUMID_BILLING_TIMEOUT_SECONDS", "30")
    monkeypatch.setenv("LUMID_BALANCE_GUARD_TIMEOUT_SECONDS", "10")
    fake_runmesh.add_user("poor@example.com", "0")
    fake_runmesh.path_modes["/billing/flowmesh-entry"] = "hang"
    async with install() as plugin:
        await known(plugin, fake_lumid, "poor", "poor@example.com")
        (sink,) = plugin.usage_sinks
        for i in range(10):
            await sink.emit([usage_row(f"t{i}", "poor")], logger)  # returns: Runmesh hangs
        await wait_for(lambda: len(fake_runmesh.entry_calls()) == 2)
        assert not fake_runmesh.released.is_set()
        assert (await billing_of(plugin).stats()).pending == 10  # durable, waiting
        # Every delivery connection is stuck, yet the guard gets Runmesh's verdict
        # (a 402, not a fail-open timeout): it has its own connections.
        poor = await plugin.identity_providers[0].resolve(
            fake_lumid.add_token("poor", email="poor@example.com"), logger
        )
        assert poor is not None
        with pytest.raises(HTTPException) as denied:
            await plugin.submission_guards[0].check(poor, logger)
        assert denied.value.status_code == 402
    # The bounded shutdown abandoned the hung posts; nothing was lost.
    fake_runmesh.released.set()
    fake_runmesh.path_modes.clear()
    async with install() as again:
        assert await billing_of(again).drain(10)
    assert len(fake_runmesh.entries) == 10


async def test_duplicate_replies_and_duplicate_emits(
    plugin: FlowMeshBindings,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
) -> None:
    fake_runmesh.add_user("alice@example.com", "10")
    await known(plugin, fake_lumid, "alice", "alice@example.com")
    # Runmesh already has t1 (a reply lost after it charged): the resend is idempotent.
    fake_runmesh.entries["t1"] = {"taskId": "t1", "cost": "1"}
    (sink,) = plugin.usage_sinks
    await sink.emit([usage_row("t1", cost=Decimal("1"))], logger)
    # The same task emitted twice with different rows: the first one wins.
    await sink.emit([usage_row("t2", cost=Decimal("2"))], logger)
    await sink.emit([usage_row("t2", cost=Decimal("999"))], logger)
    billing = billing_of(plugin)
    assert await billing.drain(10)
    assert fake_runmesh.duplicates == 1
    assert fake_runmesh.entries["t2"]["cost"] == "2"
    assert len([c for c in fake_runmesh.entry_calls() if c.json()["taskId"] == "t2"]) == 1
    assert fake_runmesh.balances["alice@example.com"] == Decimal(8)
    rows = await by_key(billing)
    assert rows["t1"].state == rows["t2"].state == "delivered"


async def test_wrong_secret_is_parked_then_replayed(
    flowmesh_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "wrong-secret-" + "7" * 20
    monkeypatch.setenv("FLOWMESH_BRIDGE_SECRET", wrong)
    fake_runmesh.add_user("alice@example.com", "10")
    caplog.set_level(logging.DEBUG)
    async with install() as plugin:
        await known(plugin, fake_lumid, "alice", "alice@example.com")
        await plugin.usage_sinks[0].emit([usage_row("t1")], logger)
        billing = billing_of(plugin)
        await wait_for(lambda: len(fake_runmesh.entry_calls()) == 1)
        assert await billing.drain(10)
        (row,) = await billing.outbox.entries(state="dead")
        assert row.key == "t1"
        assert row.reason is not None
        assert "FLOWMESH_BRIDGE_SECRET" in row.reason
        assert "401" in row.reason
        assert wrong not in repr(row)
        assert wrong not in repr(billing.client)
    assert wrong not in caplog.text
    assert fake_runmesh.secret not in caplog.text
    assert fake_runmesh.entries == {}
    # The operator fixes the secret, restarts, and replays the dead letters.
    monkeypatch.setenv("FLOWMESH_BRIDGE_SECRET", fake_runmesh.secret)
    async with install() as fixed:
        billing = billing_of(fixed)
        assert await billing.outbox.retry(all_dead=True) == 1
        billing.worker.wake()
        assert await billing.drain(10)
    assert list(fake_runmesh.entries) == ["t1"]


@pytest.mark.parametrize(
    ("mode", "setup", "reason"),
    [
        ("envelope-unknown-user", {}, "Runmesh code 500: unknown user"),
        ("status", {"status_code": 400}, "HTTP 400"),
        ("status", {"status_code": 403}, "FLOWMESH_BRIDGE_SECRET"),
        ("envelope", {"envelope_code": 402, "envelope_msg": "frozen account"}, "frozen account"),
    ],
)
async def test_permanent_rejections_are_dead_letters(
    plugin: FlowMeshBindings,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
    mode: str,
    setup: dict[str, Any],
    reason: str,
) -> None:
    await known(plugin, fake_lumid, "alice", "alice@example.com")
    if mode != "envelope-unknown-user":  # otherwise Runmesh does not know alice
        fake_runmesh.add_user("alice@example.com", "10")
        fake_runmesh.mode = mode
        for key, value in setup.items():
            setattr(fake_runmesh, key, value)
    await plugin.usage_sinks[0].emit([usage_row("t1")], logger)
    billing = billing_of(plugin)
    await wait_for(lambda: len(fake_runmesh.entry_calls()) >= 1)
    assert await billing.drain(10)
    (row,) = await billing.outbox.entries(state="dead")
    assert row.reason is not None
    assert reason in row.reason
    assert len(fake_runmesh.entry_calls()) == 1  # never retried on its own
    # Replay once the cause is fixed: delivered, once.
    fake_runmesh.mode = "ok"
    fake_runmesh.add_user("alice@example.com", "10")
    assert await billing.outbox.retry(key="t1") == 1
    billing.worker.wake()
    assert await billing.drain(10)
    assert list(fake_runmesh.entries) == ["t1"]
    assert (await billing.stats()).dead == 0


async def test_held_row_released_when_the_email_becomes_known(
    plugin: FlowMeshBindings,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
) -> None:
    fake_runmesh.add_user("dave@example.com", "10")
    await plugin.usage_sinks[0].emit([usage_row("t1", "dave")], logger)
    billing = billing_of(plugin)
    stats = await billing.stats()
    assert (stats.pending, stats.held) == (0, 1)
    (row,) = await billing.outbox.entries(state="held")
    assert row.hold_on == "dave"
    assert fake_runmesh.entry_calls() == []
    await known(plugin, fake_lumid, "dave", "dave@example.com")  # dave logs in
    await wait_for(lambda: "t1" in fake_runmesh.entries)
    assert fake_runmesh.entries["t1"]["userEmail"] == "dave@example.com"
    assert await billing.drain(10)
    assert (await billing.stats()).held == 0


async def test_email_recorded_before_a_restart_is_used(
    flowmesh_env: dict[str, str],
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
) -> None:
    fake_runmesh.add_user("erin@example.com", "10")
    async with install() as first:
        await known(first, fake_lumid, "erin", "erin@example.com")
    async with install() as second:  # erin not seen since the restart
        await second.usage_sinks[0].emit([usage_row("t1", "erin")], logger)
        assert await billing_of(second).drain(10)
    assert fake_runmesh.entries["t1"]["userEmail"] == "erin@example.com"


async def test_invalid_rows_are_kept_as_dead_letters(
    plugin: FlowMeshBindings, usage_row: RowFactory, logger: logging.Logger
) -> None:
    row = usage_row("")
    await plugin.usage_sinks[0].emit([row], logger)
    (dead,) = await billing_of(plugin).outbox.entries(state="dead")
    assert dead.reason == "usage row has no task_id"


@pytest.mark.parametrize("cost", [Decimal("NaN"), Decimal("Infinity"), float("inf")])
async def test_non_finite_costs_are_dead_letters_never_sent(
    plugin: FlowMeshBindings,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
    cost: Decimal | float,
) -> None:
    # "NaN" would reach Runmesh as a cost string and poison the user's balance.
    fake_runmesh.add_user("alice@example.com", "10")
    await known(plugin, fake_lumid, "alice", "alice@example.com")
    await plugin.usage_sinks[0].emit([usage_row("t-nan", cost=cost)], logger)
    (dead,) = await billing_of(plugin).outbox.entries(state="dead")
    assert dead.key == "t-nan"
    assert dead.reason is not None
    assert "invalid cost" in dead.reason
    assert await billing_of(plugin).drain(10)
    assert fake_runmesh.entry_calls() == []


async def test_object_shaped_rows_are_billed_too(
    plugin: FlowMeshBindings,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
) -> None:
    import types

    fake_runmesh.add_user("alice@example.com", "10")
    await known(plugin, fake_lumid, "alice", "alice@example.com")
    row = types.SimpleNamespace(**usage_row("t-obj", cost=Decimal("0.5")))
    await plugin.usage_sinks[0].emit([row], logger)
    assert await billing_of(plugin).drain(10)
    assert fake_runmesh.entries["t-obj"]["cost"] == "0.5"


async def test_slow_runmesh_timeout_then_resend_charges_once(
    flowmesh_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
) -> None:
    monkeypatch.setenv("LUMID_BILLING_TIMEOUT_SECONDS", "0.2")
    fake_runmesh.add_user("alice@example.com", "10")
    fake_runmesh.mode = "slow"
    fake_runmesh.delay = 0.6  # Runmesh records the entry, but the reply comes too late
    async with install() as plugin:
        await known(plugin, fake_lumid, "alice", "alice@example.com")
        await plugin.usage_sinks[0].emit([usage_row("t1", cost=Decimal("3"))], logger)
        await wait_for(lambda: "t1" in fake_runmesh.entries)
        assert (await billing_of(plugin).stats()).pending == 1  # the reply was lost
        fake_runmesh.mode = "ok"
        assert await billing_of(plugin).drain(10)
    assert fake_runmesh.duplicates >= 1  # the resend was answered as idempotent
    assert fake_runmesh.balances["alice@example.com"] == Decimal(7)  # charged once


async def test_http_500_is_retried(
    plugin: FlowMeshBindings,
    fake_lumid: FakeLumId,
    fake_runmesh: FakeRunmesh,
    usage_row: RowFactory,
    logger: logging.Logger,
) -> None:
    fake_runmesh.add_user("alice@example.com", "10")
    await known(plugin, fake_lumid, "alice", "alice@example.com")
    fake_runmesh.mode = "status"
    fake_runmesh.status_code = 500
    await plugin.usage_sinks[0].emit([usage_row("t1")], logger)
    await wait_for(lambda: len(fake_runmesh.entry_calls()) >= 2)
    entry = await billing_of(plugin).outbox.entry("t1")
    assert entry is not None
    assert entry.state == "pending"
    assert entry.reason == "HTTP 500"
    fake_runmesh.mode = "ok"
    assert await billing_of(plugin).drain(10)
    assert list(fake_runmesh.entries) == ["t1"]


async def test_a_failed_queue_write_is_logged_with_what_was_lost(
    flowmesh_env: dict[str, str],
    usage_row: RowFactory,
    logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with install() as plugin:
        sink = plugin.usage_sinks[0]
        await billing_of(plugin).outbox.db.close()  # the database is gone under us
        with caplog.at_level(logging.ERROR):
            await sink.emit([usage_row("t-lost", cost=Decimal("4.20"))], logger)  # no raise
            assert "lost" not in caplog.text  # kept in memory, retried until shutdown
    # At shutdown (the flush budget spent) each row still in memory is logged as lost.
    assert "lost at shutdown" in caplog.text
    assert "task t-lost cost 4.20" in caplog.text
    assert "LUMID_ACL_DB_PATH" in caplog.text

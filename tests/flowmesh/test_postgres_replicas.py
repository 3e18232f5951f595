"""Two FlowMesh replicas as two processes on one PostgreSQL database: billing exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time

import pytest

from lumid_core.pg import PgDatabase, PgPrincipalDirectory
from lumid_fakes import FakeRunmesh

REPLICA = textwrap.dedent(
    """
    import asyncio, logging, sys
    from datetime import UTC, datetime
    from decimal import Decimal

    from lumid_flowmesh_plugin import install

    async def main() -> None:
        prefix, count, then = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        log = logging.getLogger("replica")
        async with install() as plugin:
            rows = [
                dict(org_id="lumid", principal_id="alice", supplier_id=None,
                     occurred_at=datetime.now(UTC), cost=Decimal("0.10"), task_id=f"{prefix}{i}",
                     runtime_sec=3.0, cost_per_hour=1.0, task_status="succeeded")
                for i in range(count)
            ]
            if rows:
                await plugin.usage_sinks[0].emit(rows, log)
            print("EMITTED", flush=True)
            if then == "wait":
                await asyncio.sleep(3600)
            assert plugin.billing is not None
            print("DRAINED" if await plugin.billing.drain(60) else "TIMEOUT", flush=True)

    asyncio.run(main())
    """
)


@pytest.fixture
async def shared(
    flowmesh_env: dict[str, str], pg_url: str, fake_runmesh: FakeRunmesh
) -> dict[str, str]:
    """The replicas' environment; alice's email is known in the shared directory."""
    db = await PgDatabase.open(pg_url, pool_size=1)
    await PgPrincipalDirectory(db).record("alice", "alice@example.com")
    await db.close()
    fake_runmesh.add_user("alice@example.com", "1000")
    env = {**os.environ, **flowmesh_env, "LUMID_DATABASE_URL": pg_url}
    env.pop("LUMID_ACL_DB_PATH", None)
    env["LUMID_OUTBOX_LEASE_SECONDS"] = "2"
    env["LUMID_BILLING_TIMEOUT_SECONDS"] = "30"  # a hung post stays in flight
    return env


async def _start(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", REPLICA, *args, env=env, stdout=asyncio.subprocess.PIPE
    )


async def _line(proc: asyncio.subprocess.Process, within: float = 60) -> bytes:
    assert proc.stdout is not None
    async with asyncio.timeout(within):
        return (await proc.stdout.readline()).strip()


async def test_two_live_replicas_post_each_row_once(
    shared: dict[str, str], fake_runmesh: FakeRunmesh
) -> None:
    a = await _start(shared, "a", "150", "drain")
    b = await _start(shared, "b", "150", "drain")
    try:
        assert await _line(a) == b"EMITTED"
        assert await _line(b) == b"EMITTED"
        assert await _line(a) == b"DRAINED"
        assert await _line(b) == b"DRAINED"
    finally:
        for p in (a, b):
            if p.returncode is None:
                p.kill()
            await p.wait()
    assert len(fake_runmesh.entries) == 300
    assert fake_runmesh.duplicates == 0
    posted = [c.json()["taskId"] for c in fake_runmesh.entry_calls()]
    assert len(posted) == 300  # no row was ever posted twice, by either replica
    assert len(set(posted)) == 300


async def test_a_replica_killed_mid_delivery_is_covered_by_the_other(
    shared: dict[str, str], fake_runmesh: FakeRunmesh
) -> None:
    fake_runmesh.mode = "hang"  # replica a's posts never get an answer
    a = await _start(shared, "t", "20", "wait")
    try:
        assert await _line(a) == b"EMITTED"
        deadline = time.monotonic() + 30
        while len(fake_runmesh.entry_calls()) < 16:  # a's worker has 16 posts in flight
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    finally:
        a.send_signal(signal.SIGKILL)
        await a.wait()
    assert a.returncode == -signal.SIGKILL
    in_flight = {c.json()["taskId"] for c in fake_runmesh.entry_calls()}
    assert fake_runmesh.entries == {}
    fake_runmesh.mode = "ok"  # (a's hung posts stay hung: they never charge)
    killed_at = time.monotonic()
    b = await _start(shared, "unused", "0", "drain")
    try:
        assert await _line(b) == b"EMITTED"
        assert await _line(b) == b"DRAINED"
    finally:
        if b.returncode is None:
            b.kill()
        await b.wait()
    assert sorted(fake_runmesh.entries) == sorted(f"t{i}" for i in range(20))
    assert fake_runmesh.duplicates == 0
    # b waited for a's leases to end before taking the rows a had in flight.
    assert time.monotonic() - killed_at >= 1.5
    posted_by_b = [c.json()["taskId"] for c in fake_runmesh.entry_calls()][len(in_flight) :]
    assert sorted(posted_by_b) == sorted(f"t{i}" for i in range(20))

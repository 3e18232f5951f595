"""A server SIGKILLed right after `emit()` returned loses nothing on the next start."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap

from lumid_fakes import FakeLumId, FakeRunmesh
from lumid_flowmesh_plugin import install

CHILD = textwrap.dedent(
    """
    import asyncio, logging, sys
    from datetime import UTC, datetime
    from decimal import Decimal

    from lumid_flowmesh_plugin import install

    async def main() -> None:
        log = logging.getLogger("child")
        async with install() as plugin:
            assert await plugin.identity_providers[0].resolve(sys.argv[1], log) is not None
            rows = [
                dict(org_id="lumid", principal_id="alice", supplier_id=None,
                     occurred_at=datetime.now(UTC), cost=Decimal("0.42"), task_id=f"t{i}",
                     runtime_sec=3.0, cost_per_hour=1.0, task_status="failed")
                for i in range(3)
            ]
            await plugin.usage_sinks[0].emit(rows, log)
            print("EMITTED", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_sigkill_after_emit_loses_nothing(
    flowmesh_env: dict[str, str], fake_lumid: FakeLumId, fake_runmesh: FakeRunmesh
) -> None:
    token = fake_lumid.add_token("alice", email="alice@example.com")
    fake_runmesh.add_user("alice@example.com", "5")
    fake_runmesh.mode = "down"  # nothing can be delivered before the kill
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        token,
        env={**os.environ, **flowmesh_env},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        async with asyncio.timeout(60):
            line = await child.stdout.readline()
        assert line.strip() == b"EMITTED"
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    assert fake_runmesh.entries == {}
    fake_runmesh.mode = "ok"
    async with install() as plugin:
        assert plugin.billing is not None
        assert await plugin.billing.drain(20)
    assert sorted(fake_runmesh.entries) == ["t0", "t1", "t2"]
    assert fake_runmesh.entries["t0"]["cost"] == "0.42"
    assert fake_runmesh.entries["t0"]["taskStatus"] == "failed"

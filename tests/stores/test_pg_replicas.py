"""Two replicas as two processes on one PostgreSQL database: grants, revokes, reconcile."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import AsyncIterator

import pytest

from lumid_core.pg import PgDatabase, PgGrantStore
from lumid_core.store.base import Level

# A replica: opens the store, then runs one JSON command per stdin line, one reply each.
REPLICA = textwrap.dedent(
    """
    import asyncio, json, sys
    from lumid_core.pg import PgDatabase, PgGrantStore
    from lumid_core.store.base import Level

    async def main() -> None:
        db = await PgDatabase.open(sys.argv[1], pool_size=2)
        store = PgGrantStore(db)
        loop = asyncio.get_running_loop()
        print(json.dumps("ready"), flush=True)
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            op, *args = json.loads(line)
            if op == "grant":
                out = await store.grant(args[0], args[1], args[2], Level[args[3]])
            elif op == "level":
                found = await store.level(*args)
                out = None if found is None else found.name
            elif op == "revoke":
                out = await store.revoke(*args)
            elif op == "reconcile":
                result = await store.reconcile([tuple(ref) for ref in args[0]])
                out = result.removed
            print(json.dumps(out), flush=True)
        await db.close()

    asyncio.run(main())
    """
)


class Replica:
    """One replica process and its command channel."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def call(self, *command: object) -> object:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        async with asyncio.timeout(60):
            return json.loads(await self.proc.stdout.readline())


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[tuple[Replica, Replica]]:
    db = await PgDatabase.open(pg_url, pool_size=1)  # migrate once, before both start
    await db.close()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            REPLICA,
            pg_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    pair = (Replica(procs[0]), Replica(procs[1]))
    try:
        for r in pair:
            async with asyncio.timeout(60):
                assert json.loads(await r.proc.stdout.readline()) == "ready"  # type: ignore[union-attr]
        yield pair
    finally:
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()
            try:
                async with asyncio.timeout(10):
                    await p.wait()
            except TimeoutError:
                p.kill()
                await p.wait()


async def test_a_grant_through_one_replica_counts_on_the_others_next_check(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    assert await b.call("level", "workflow", "w1", "alice") is None
    await a.call("grant", "workflow", "w1", "alice", "WRITE")
    assert await b.call("level", "workflow", "w1", "alice") == "WRITE"
    assert await b.call("revoke", "workflow", "w1", "alice") is True
    assert await a.call("level", "workflow", "w1", "alice") is None
    for i in range(20):  # every check, not just the first: no cache anywhere
        await a.call("grant", "job", f"j{i}", "bob", "READ")
        assert await b.call("level", "job", f"j{i}", "bob") == "READ"
        await b.call("revoke", "job", f"j{i}", "bob")
        assert await a.call("level", "job", f"j{i}", "bob") is None


async def test_concurrent_reconciles_never_drop_a_grant_either_list_holds(
    pg_url: str, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    # Stale grants, written before either replica opened: in neither list, swept.
    db = await PgDatabase.open(pg_url, pool_size=2)
    seed = PgGrantStore(db)
    stale = [("job", f"stale{i}") for i in range(3000)]
    common = [("job", f"c{i}") for i in range(3000)]
    async with db.pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO lumid_grants VALUES ($1, $2, 'alice', 2, 0, 0)", [*stale, *common]
        )
    # Resources created while the replicas run: each list holds only its own.
    only_a = [("job", f"a{i}") for i in range(2000)]
    only_b = [("job", f"b{i}") for i in range(2000)]
    for kind, rid in only_a[:200]:
        await a.call("grant", kind, rid, "alice", "WRITE")
    for kind, rid in only_b[:200]:
        await b.call("grant", kind, rid, "alice", "WRITE")
    async with db.pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO lumid_grants VALUES ($1, $2, 'alice', 2, "
            "extract(epoch from clock_timestamp()), extract(epoch from clock_timestamp()))",
            [*only_a[200:], *only_b[200:]],
        )
    list_a = [list(r) for r in [*common, *only_a]]
    list_b = [list(r) for r in [*common, *only_b]]
    removed = await asyncio.gather(a.call("reconcile", list_a), b.call("reconcile", list_b))
    assert sorted(int(n) for n in removed) == [0, 3000]  # type: ignore[call-overload]  # one swept the stale rows, the other found none
    left = {(g.kind, g.id) async for g in seed.iter_grants()}
    assert left == {*common, *only_a, *only_b}
    assert await seed.level("job", "a5", "alice") is Level.WRITE
    await db.close()

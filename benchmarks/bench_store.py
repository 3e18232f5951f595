"""Grants: require, accessible_ids, register (group commits), reconcile.

Driven through the FlowMesh plugin's installed hooks on a real SQLite file; each
figure beside a raw SQLite query on the same table in the same run.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from lumid_hooks import PrincipalContext, ResourceRef

from .common import PeakRss, Result, installed, percentile, rate

__all__ = ["run_store"]

log = logging.getLogger("benchmarks.store")
CONCURRENCY = 64
_LEVEL = "SELECT level FROM grants WHERE kind = ? AND id = ? AND principal_id = ?"
_IDS = "SELECT id FROM grants WHERE principal_id = ? AND kind = ? AND level >= ?"
_INSERT = (
    "INSERT INTO grants (kind, id, principal_id, level, granted_at, last_seen_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def _principal(pid: str, *scopes: str) -> PrincipalContext:
    return PrincipalContext(
        principal_id=pid, org_id="lumid", external_id=pid, principal_type="user", scopes=[*scopes]
    )


def _seed(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """Insert grants from another connection, dated an hour ago (before the open)."""
    old = time.time() - 3600
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(_INSERT, ((k, i, p, 2, old, old) for k, i, p in rows))
        conn.execute("COMMIT")
    finally:
        conn.close()


async def _fan_out(n: int, callers: int, work: Callable[[int], Awaitable[object]]) -> float:
    items = iter(range(n))

    async def caller() -> None:
        for i in items:
            await work(i)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return rate(n, time.perf_counter() - start)


def _env(path: Path) -> dict[str, str]:
    return {
        "LUM_ID_BASE_URL": "http://127.0.0.1:9",  # never called here
        "LUMID_ACL_DB_PATH": str(path),
        "RUNMESH_BILLING_BASE_URL": "",
        "FLOWMESH_BRIDGE_SECRET": "",
    }


async def run_store(quick: bool, workdir: Path) -> list[Result]:
    workdir.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    path = workdir / "grants.sqlite"
    async with installed(_env(path)) as b:
        engine, registrar = b.permission_checkers[0], b.resource_registrars[0]
        total = 20_000 if quick else 100_000
        big = 2_000 if quick else 10_000
        rows = [("workflow", f"wf{i}", f"p{i % 1000}") for i in range(total)]
        rows += [("task", f"t{i}", "big") for i in range(big)]
        _seed(path, rows)
        results.extend(await _require(engine, path, quick, total))
        results.append(await _accessible(engine, path, quick, big))
        results.append(await _register(registrar, path, quick))
    path = workdir / "reconcile.sqlite"
    async with installed(_env(path)) as b:
        results.append(await _reconcile(b.resource_registrars[0], path, quick))
    return results


async def _require(engine: Any, path: Path, quick: bool, total: int) -> list[Result]:
    n = 5_000 if quick else 50_000
    who = _principal("p7", "flowmesh:workflows:read")
    refs = [ResourceRef(kind="workflow", id=f"wf{i}") for i in range(7, total, 1000)]
    keys = [("workflow", r.id, "p7") for r in refs]
    m = len(refs)

    async def hook(i: int) -> None:
        await engine.require(who, refs[i % m], "read", log)

    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def point(i: int) -> None:
        assert raw.execute(_LEVEL, keys[i % m]).fetchone() is not None

    async def hop(i: int) -> None:
        await asyncio.to_thread(point, i)

    seq, conc, lim, hop_rate = 0.0, 0.0, 0.0, 0.0
    for _ in range(2):
        start = time.perf_counter()
        for i in range(n):
            point(i)
        lim = max(lim, rate(n, time.perf_counter() - start))
        start = time.perf_counter()
        for i in range(n):
            await hook(i)
        seq = max(seq, rate(n, time.perf_counter() - start))
        conc = max(conc, await _fan_out(n, CONCURRENCY, hook))
    start = time.perf_counter()
    for i in range(n // 10):
        await hop(i)
    hop_rate = rate(n // 10, time.perf_counter() - start)
    fresh = await _external_change(engine, who, path, refs[0])
    raw.close()
    notes = {"thread_hop_per_query_per_s": round(hop_rate), "sees_other_process_commits": fresh}
    return [
        Result(
            f"require, {total:,} grants, sequential",
            seq,
            "checks/s",
            lim,
            "raw SQLite point query in-loop",
            ">= 10,000/s, sees other writers",
            seq >= 10_000 and fresh,
            seq / lim,
            notes,
        ),
        Result(
            f"require, {total:,} grants, {CONCURRENCY} concurrent",
            conc,
            "checks/s",
            lim,
            "raw SQLite point query in-loop",
            ">= 10,000/s",
            conc >= 10_000,
            conc / lim,
        ),
    ]


_EXTERNAL = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)
now = time.time()
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO grants VALUES ('workflow', 'wf-external', 'p7', 1, ?, ?)", (now, now))
conn.execute("DELETE FROM grants WHERE kind = 'workflow' AND id = ? AND principal_id = 'p7'",
             (sys.argv[2],))
conn.execute("COMMIT")
"""


async def _external_change(
    engine: Any, who: PrincipalContext, path: Path, revoked: ResourceRef
) -> bool:
    """Another process (as the CLI would) grants one resource and revokes another."""
    await engine.require(who, revoked, "read", log)
    argv = [sys.executable, "-c", _EXTERNAL, str(path), str(revoked.id)]
    await asyncio.to_thread(subprocess.run, argv, check=True)
    await engine.require(who, ResourceRef(kind="workflow", id="wf-external"), "read", log)
    try:
        await engine.require(who, revoked, "read", log)
    except HTTPException as exc:
        return exc.status_code == 403
    return False


async def _accessible(engine: Any, path: Path, quick: bool, big: int) -> Result:
    who = _principal("big", "flowmesh:tasks:read")
    runs = 15 if quick else 41
    raw = sqlite3.connect(path, isolation_level=None)
    params = ("big", "task", 1)
    got = await engine.accessible_ids(who, "task", "read", log)
    assert got is not None
    assert len(got) == big
    figs: list[float] = []
    lims: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        ids = frozenset(row[0] for row in raw.execute(_IDS, params).fetchall())
        lims.append(time.perf_counter() - start)
        start = time.perf_counter()
        got = await engine.accessible_ids(who, "task", "read", log)
        figs.append(time.perf_counter() - start)
    raw.close()
    assert got == ids
    fig, lim = percentile(figs, 50) * 1e3, percentile(lims, 50) * 1e3
    return Result(
        f"accessible_ids, {big:,} grants, p50",
        fig,
        "ms",
        lim,
        "raw indexed query -> frozenset of the same ids",
        "<= 1.2x limit",
        fig <= 1.2 * lim,
        fig / lim,
    )


async def _register(registrar: Any, path: Path, quick: bool) -> Result:
    n = 3_000 if quick else 20_000
    who = _principal("reg", "flowmesh:workflows:write")
    refs = [ResourceRef(kind="workflow", id=f"reg{i}") for i in range(n)]
    raw = sqlite3.connect(path, isolation_level=None)

    async def hook(i: int) -> None:
        await registrar.register(who, refs[i], log)

    per_s = await _fan_out(n, CONCURRENCY, hook)
    landed = raw.execute(
        "SELECT count(*) FROM grants WHERE principal_id = 'reg' AND level = 2"
    ).fetchone()[0]
    raw.close()
    return Result(
        f"register, {CONCURRENCY} concurrent",
        per_s,
        "grants/s",
        None,
        "",
        ">= 5,000/s, each durable on return",
        per_s >= 5_000 and landed == n,
        None,
        {"committed_rows": landed, "expected": n},
    )


async def _reconcile(registrar: Any, path: Path, quick: bool) -> Result:
    live_n, stale_n = (20_000, 5_000) if quick else (200_000, 50_000)
    rows = [("workflow", f"w{i}", f"p{i % 1000}") for i in range(live_n)]
    rows += [("workflow", f"s{i}", f"p{i % 1000}") for i in range(stale_n)]
    _seed(path, rows)
    refs = [ResourceRef(kind="workflow", id=f"w{i}") for i in range(live_n)]
    with PeakRss() as mem:
        start = time.perf_counter()
        await registrar.reconcile(refs, log)
        took = time.perf_counter() - start
    raw = sqlite3.connect(path, isolation_level=None)
    left = raw.execute("SELECT count(*) FROM grants WHERE kind = 'workflow'").fetchone()[0]
    raw.close()
    grown = mem.peak_growth / 2**20
    return Result(
        f"reconcile {live_n:,} live + {stale_n:,} stale",
        took,
        "s",
        None,
        "",
        "< 2 s, peak RSS growth < 64 MiB",
        took < 2 and left == live_n and grown < 64,
        None,
        {"grants_left": left, "expected_left": live_n, "peak_rss_growth_mib": round(grown, 1)},
    )

"""Billing: emit latency with Runmesh hung; sustained delivery of many rows.

Driven through the FlowMesh plugin's installed usage sink (durable outbox and its
delivery worker) against `FakeRunmesh` in another process, beside the same rows
posted by a pooled httpx client one at a time, and one at a time with a new client
per row (how a sink that posts inline would do it). The single-row line emits one
row per `emit` call, one after another (how FlowMesh reports finished tasks), and
counts the rows when the fake has received them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from lumid_core.directory import SqlitePrincipalDirectory

from .common import FakeProcess, Result, installed, percentile, rate

__all__ = ["run_billing"]

log = logging.getLogger("benchmarks.billing")
USERS = 50
CONCURRENCY = 64
ENTRY = "/billing/flowmesh-entry"


def _row(i: int, stamp: int) -> dict[str, Any]:
    return {
        "org_id": "lumid",
        "principal_id": f"p{i % USERS}",
        "supplier_id": None,
        "occurred_at": datetime.now(UTC),
        "cost": Decimal("0.0125"),
        "task_id": f"task-{stamp}-{i}",
        "runtime_sec": 45.0,
        "cost_per_hour": 1.0,
        "task_status": "SUCCEEDED",
    }


def _body(i: int, stamp: int) -> dict[str, Any]:
    return {
        "userEmail": f"u{i % USERS}@bench.test",
        "userSub": f"p{i % USERS}",
        "taskId": f"raw-{stamp}-{i}",
        "workflowId": "",
        "cost": "0.0125",
        "durationSec": 45,
        "costPerHour": 1.0,
        "taskStatus": "SUCCEEDED",
    }


def _env(path: Path, url: str, secret: str) -> dict[str, str]:
    return {
        "LUM_ID_BASE_URL": "http://127.0.0.1:9",  # never called here
        "LUMID_ACL_DB_PATH": str(path),
        "RUNMESH_BILLING_BASE_URL": url,
        "FLOWMESH_BRIDGE_SECRET": secret,
        "LUMID_BILLING_FLUSH_SECONDS": "0.5",
        "LUMID_BILLING_TIMEOUT_SECONDS": "30",
    }


async def _emails(bindings: Any) -> None:
    directory = SqlitePrincipalDirectory(bindings.billing.outbox.db)
    for u in range(USERS):
        await directory.record(f"p{u}", f"u{u}@bench.test")


def _fake_args(secret: str, *extra: str) -> list[str]:
    args = ["runmesh", "--secret", secret, *extra]
    for u in range(USERS):
        args += ["--user", f"u{u}@bench.test"]
    return args


async def run_billing(quick: bool, workdir: Path) -> list[Result]:
    secret = "bench-" + secrets.token_hex(16)
    results = [await _hung(quick, workdir / "hung.sqlite", secret)]
    results.extend(await _delivery(quick, workdir / "delivery.sqlite", secret))
    results.append(await _single_rows(quick, workdir / "single.sqlite", secret))
    return results


async def _fake_count(client: httpx.AsyncClient, url: str) -> int:
    seen = json.loads((await client.get(url + "/_fake/stats")).content)
    return int(seen["paths"].get(ENTRY, 0))


async def _single_rows(quick: bool, path: Path, secret: str) -> Result:
    """One row per `emit`, sequentially, counted when the fake Runmesh has it."""
    n = 300 if quick else 2_000
    rounds = 1 if quick else 3
    headers = {"X-Bridge-Secret": secret}
    figs: list[float] = []
    lims: list[float] = []
    with FakeProcess(*_fake_args(secret)) as fake:
        url = fake.url + ENTRY
        async with (
            httpx.AsyncClient(trust_env=False) as pooled,
            httpx.AsyncClient(trust_env=False) as probe,
            installed(_env(path, fake.url, secret)) as b,
        ):
            await _emails(b)
            sink = b.usage_sinks[0]
            for i in range(20):  # warm both paths up
                await pooled.post(url, json=_body(-i - 1, 0), headers=headers)
                await sink.emit([_row(-i - 1, 0)], log)
            assert await b.billing.drain(within=30)
            for r in range(rounds):
                stamp = time.time_ns()
                start = time.perf_counter()
                for i in range(n):
                    reply = await pooled.post(url, json=_body(i, stamp), headers=headers)
                    assert reply.json()["code"] == 200
                lims.append(rate(n, time.perf_counter() - start))
                target = await _fake_count(probe, fake.url) + n
                start = time.perf_counter()
                for i in range(n):
                    await sink.emit([_row(i, stamp + r)], log)
                while await _fake_count(probe, fake.url) < target:  # noqa: ASYNC110 (another process)
                    await asyncio.sleep(0.002)
                figs.append(rate(n, time.perf_counter() - start))
            # Outcomes are recorded up to `mark_delay` after the fake has the rows.
            drained = await b.billing.drain(within=30)
            stats = await b.billing.stats()
    fig, lim = max(figs), max(lims)
    ok = drained and stats.pending == 0 and stats.dead == 0
    return Result(
        f"billing, {n:,} rows one per emit, counted at Runmesh",
        fig,
        "rows/s",
        lim,
        "pooled httpx, the same rows one at a time",
        ">= 0.9x limit",
        ok and fig >= 0.9 * lim,
        fig / lim,
        {"rounds": rounds, "delivered": stats.delivered, "dead": stats.dead},
    )


async def _hung(quick: bool, path: Path, secret: str) -> Result:
    n = 100 if quick else 1000
    stamp = time.time_ns()
    with FakeProcess(*_fake_args(secret, "--server", "threaded", "--mode", "hang")) as fake:
        async with installed(_env(path, fake.url, secret)) as b:
            await _emails(b)
            sink = b.usage_sinks[0]
            took: list[float] = []
            for i in range(n):
                start = time.perf_counter()
                await sink.emit([_row(i, stamp)], log)
                took.append(time.perf_counter() - start)
            stats = await b.billing.stats()
    p50, p99 = percentile(took, 50) * 1e3, percentile(took, 99) * 1e3
    return Result(
        "billing emit with Runmesh hung, p50",
        p50,
        "ms",
        None,
        "",
        "< 2 ms",
        p50 < 2 and stats.pending + stats.delivered >= n,
        None,
        {"p99_ms": round(p99, 2), "queued": stats.pending, "emits": n},
    )


async def _delivery(quick: bool, path: Path, secret: str) -> list[Result]:
    n = 200 if quick else 10_000
    stamp = time.time_ns()
    headers = {"X-Bridge-Secret": secret}
    with FakeProcess(*_fake_args(secret)) as fake:
        url = fake.url + ENTRY

        async def post(client: httpx.AsyncClient, i: int) -> None:
            reply = await client.post(url, json=_body(i, stamp), headers=headers)
            assert reply.json()["code"] == 200

        async with httpx.AsyncClient(trust_env=False) as pooled:
            for i in range(20):
                await post(pooled, -i - 1)
            start = time.perf_counter()
            for i in range(n):
                await post(pooled, i)
            pooled_rate = rate(n, time.perf_counter() - start)
        m = 10 if quick else 200
        start = time.perf_counter()
        for i in range(m):
            async with httpx.AsyncClient(trust_env=False) as once:
                await post(once, n + i)
        one_by_one = rate(m, time.perf_counter() - start)

        async with installed(_env(path, fake.url, secret)) as b:
            await _emails(b)
            sink = b.usage_sinks[0]
            rows = iter(range(n))

            async def caller() -> None:
                for i in rows:
                    await sink.emit([_row(i, stamp)], log)

            start = time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
            emitted = time.perf_counter() - start
            drained = await b.billing.drain(within=300)
            delivered_rate = rate(n, time.perf_counter() - start)
            stats = await b.billing.stats()
        async with httpx.AsyncClient(trust_env=False) as probe:
            seen = json.loads((await probe.get(fake.url + "/_fake/stats")).content)
    entries = int(seen["paths"].get(ENTRY, 0)) - n - m - 20
    # Runmesh is idempotent on taskId: a resend is harmless, but count it.
    ok = drained and stats.delivered == n and entries >= n
    notes = {
        "delivered": stats.delivered,
        "dead": stats.dead,
        "posts_seen_by_fake": entries,
        "resends": entries - n,
        "emit_phase_s": round(emitted, 2),
    }
    ratio = delivered_rate / pooled_rate
    return [
        Result(
            f"billing delivery of {n:,} rows",
            delivered_rate,
            "rows/s",
            pooled_rate,
            "pooled httpx, one row at a time",
            ">= 0.8x limit, each row once",
            ok and ratio >= 0.8,
            ratio,
            notes,
        ),
        Result(
            f"billing delivery of {n:,} rows vs posting one by one",
            delivered_rate,
            "rows/s",
            one_by_one,
            "new client per row, serially",
            ">= 10x limit (issue 6)",
            ok and delivered_rate >= 10 * one_by_one,
            delivered_rate / one_by_one,
        ),
    ]

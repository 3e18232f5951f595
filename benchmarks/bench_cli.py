"""`lumid` cold start: whole-process wall time of a command, beside a bare interpreter.

Each command runs as a fresh process (as an operator or a script runs it), so the
figure includes interpreter start-up and every import the command makes. The limit
line is `python -c pass` measured in the same run; the targets are absolute
(issue 14): `lumid --help` under 0.2 s, `lumid acl ls` on 100 grants under 0.3 s
(and `lumid billing status`, the other everyday read, under the same 0.3 s).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import Result

__all__ = ["run_cli"]

GRANTS = 100


def _lumid() -> list[str]:
    script = Path(sys.executable).with_name("lumid")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "lumid_core.cli"]


def _wall(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """(median, best) wall seconds of `argv` as a new process, after one warm-up
    run (so the figure is the OS page cache's, not the first read from disk)."""
    times: list[float] = []
    for i in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(  # noqa: S603 (our own interpreter and console script)
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
        if i:
            times.append(time.perf_counter() - started)
    return statistics.median(times), min(times)


async def _fill(path: Path) -> None:
    from lumid_core import Database, Level, SqliteGrantStore

    db = await Database.open(path)
    try:
        store = SqliteGrantStore(db)
        grants = (store.grant("workflow", f"wf-{i}", "alice", Level.READ) for i in range(GRANTS))
        await asyncio.gather(*grants)
    finally:
        await db.close()


async def run_cli(quick: bool, workdir: Path) -> list[Result]:
    """Cold-start figures for `lumid --help`, `acl ls` and `billing status`."""
    runs = 5 if quick else 15
    db = workdir / "acl.sqlite"
    await _fill(db)
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("LUMID_", "LUM_ID_"))}
    env["LUMID_ACL_DB_PATH"] = str(db)
    bare, bare_best = await asyncio.to_thread(_wall, [sys.executable, "-c", "pass"], env, runs)
    no_site, _ = await asyncio.to_thread(_wall, [sys.executable, "-S", "-c", "pass"], env, runs)
    lumid = _lumid()
    lines: list[tuple[str, list[str], float]] = [
        ("cli cold start: lumid --help", ["--help"], 0.2),
        (f"cli cold start: lumid acl ls ({GRANTS} grants)", ["acl", "ls"], 0.3),
        ("cli cold start: lumid billing status", ["billing", "status"], 0.3),
    ]
    results: list[Result] = []
    for name, args, target in lines:
        median, best = await asyncio.to_thread(_wall, [*lumid, *args], env, runs)
        results.append(
            Result(
                name=name,
                figure=median * 1000,
                unit="ms wall (median)",
                limit=bare * 1000,
                limit_label="python -c pass",
                ratio=median / bare,
                target=f"< {target * 1000:.0f} ms",
                passed=median < target,
                notes={
                    "best_ms": round(best * 1000, 1),
                    "python_-S_-c_pass_ms": round(no_site * 1000, 1),
                    "python_-c_pass_best_ms": round(bare_best * 1000, 1),
                    "runs": runs,
                },
            )
        )
    return results

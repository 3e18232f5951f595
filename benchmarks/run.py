"""Run the suite, print the table, write JSON; exit 1 on a MISS only with --strict."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from .bench_billing import run_billing
from .bench_cli import run_cli
from .bench_identity import run_identity, run_memory
from .bench_pg import run_pg
from .bench_store import run_store
from .common import Result

__all__ = ["SUITES", "main"]

Suite = Callable[[bool, Path], Awaitable[list[Result]]]
SUITES: dict[str, Suite] = {
    "identity": run_identity,
    "store": run_store,
    "billing": run_billing,
    "memory": run_memory,
    "pg": run_pg,
    "cli": run_cli,
}


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(results: Sequence[Result]) -> str:
    rows = [("benchmark", "figure", "unit", "limit (same run)", "ratio", "target", "")]
    for r in results:
        limit = f"{_fmt(r.limit)} ({r.limit_label})" if r.limit is not None else "-"
        verdict = "PASS" if r.passed else ("MISS" if r.passed is False else "")
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        rows.append((r.name, _fmt(r.figure), r.unit, limit, ratio, r.target, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = [
        f"- {r.name}: " + ", ".join(f"{k}={v}" for k, v in r.notes.items())
        for r in results
        if r.notes
    ]
    return "\n".join(lines + (["", *notes] if notes else []))


async def _run(names: Sequence[str], quick: bool) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="lumid-bench-", dir=os.environ.get("BENCH_DIR")) as d:
        for name in names:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            workdir = Path(d) / name
            workdir.mkdir(parents=True, exist_ok=True)
            results.extend(await SUITES[name](quick, workdir))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--json", type=Path, help="write the results as JSON to this path")
    p.add_argument("--strict", action="store_true", help="exit 1 when any target is missed")
    p.add_argument("--only", nargs="+", choices=sorted(SUITES), help="run only these suites")
    args = p.parse_args(argv)
    started = time.time()
    results = asyncio.run(_run(args.only or list(SUITES), args.quick))
    print(table(results))
    if args.json is not None:
        doc = {
            "started_at": started,
            "quick": args.quick,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "results": [r.as_dict() for r in results],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    missed = [r.name for r in results if r.passed is False]
    if missed:
        print(f"\n{len(missed)} target(s) missed: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed and args.strict else 0

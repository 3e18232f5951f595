"""The benchmark suite still runs: `python -m benchmarks --quick` in a subprocess.

Only that it runs and produces numbers: timings belong to `make bench`, never here.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from lumid_fakes import find_pg_bin

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(  # noqa: S603 (fixed argv: our own module)
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["quick"] is True
    names = [r["name"] for r in doc["results"]]
    for part in (
        "identity hit",
        "identity miss",
        "identity first sight",
        "require",
        "accessible_ids",
        "register",
        "reconcile",
        "RSS growth",
        "billing emit",
        "billing delivery",
    ):
        assert any(part in name for name in names), (part, names)
    if find_pg_bin() is not None:  # the PostgreSQL suite runs where PostgreSQL is installed
        for part in ("pg require", "pg register", "pg reconcile", "pg outbox"):
            assert any(part in name for name in names), (part, names)
    for result in doc["results"]:
        assert isinstance(result["figure"], float | int), result
        assert math.isfinite(result["figure"]), result
        assert result["passed"] in (True, False), result
        if result["limit"] is not None:
            assert result["limit"] > 0, result
    # The table is printed with a verdict per figure.
    assert "| benchmark" in proc.stdout
    assert proc.stdout.count("PASS") + proc.stdout.count("MISS") == len(doc["results"])

"""Shared pieces: results, timing helpers, RSS, and emulators in their own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Self

from lumid_fakes.environ import operator_env
from lumid_fakes.service import Service

__all__ = [
    "FakeProcess",
    "PeakRss",
    "Result",
    "installed",
    "percentile",
    "rate",
    "rss_bytes",
]


@dataclass
class Result:
    """One figure, the same-run limit it is compared with, and the target's verdict."""

    name: str
    figure: float
    unit: str
    limit: float | None = None
    limit_label: str = ""
    target: str = ""
    passed: bool | None = None
    ratio: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "figure": self.figure,
            "unit": self.unit,
            "limit": self.limit,
            "limit_label": self.limit_label,
            "ratio": self.ratio,
            "target": self.target,
            "passed": self.passed,
            "notes": self.notes,
        }


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


class FakeProcess(Service):
    """`python -m lumid_fakes ...` in a child process; stops when its stdin closes."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.port = 0

    def start(self) -> Self:
        self._proc = subprocess.Popen(  # noqa: S603 (fixed argv, our own module)
            [sys.executable, "-m", "lumid_fakes", *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait(5)
            raise RuntimeError(f"lumid_fakes {' '.join(self.args)} exited before listening")
        info = json.loads(line)
        self.url = str(info["url"])
        self.port = int(info["port"])
        return self

    def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


@asynccontextmanager
async def installed(env: dict[str, str]) -> AsyncIterator[Any]:
    """The FlowMesh plugin's bindings, from its real `install()`, under `env`.

    The variables are set for the duration only (the loader reads the environment).
    """
    from lumid_flowmesh_plugin import install

    with operator_env(env):
        async with install() as bindings:
            yield bindings


class PeakRss:
    """Sample RSS from a thread while a block runs; `peak_growth` in bytes."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.before = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> Self:
        self.before = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def peak_growth(self) -> int:
        return self.peak - self.before

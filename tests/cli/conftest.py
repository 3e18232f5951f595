"""Run `lumid` as a real subprocess (`python -m lumid_core.cli`) with a clean environment.

The `cli` fixture returns a `subprocess.CompletedProcess[str]`; tests annotate it as
`Callable[..., CompletedProcess[str]]`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ}


@pytest.fixture
def cli_env(db_path: Path) -> dict[str, str]:
    """The environment the CLI subprocess sees; tests add variables to it."""
    return {**_base_env(), "LUMID_ACL_DB_PATH": str(db_path)}


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(
        *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", "lumid_core.cli", *args],
            env={**cli_env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run

"""The `lumid` console script that lumid-core installs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lumid_core


def test_the_installed_script_runs() -> None:
    script = Path(sys.executable).parent / "lumid"
    assert script.is_file(), "lumid-core's [project.scripts] entry is not installed"
    version = subprocess.run(  # noqa: S603 (the workspace's own script)
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert version.returncode == 0
    assert version.stdout.strip() == f"lumid-core {lumid_core.__version__}"
    bare = subprocess.run(  # noqa: S603
        [str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert bare.returncode == 2
    assert "the following arguments are required: COMMAND" in bare.stderr
    helped = subprocess.run(  # noqa: S603
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert helped.returncode == 0
    for command in ("doctor", "acl", "billing"):
        assert f"    {command} " in helped.stdout

"""The whole-suite guard in tests/conftest.py: a test folder that collects nothing fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _project(root: Path, folders: list[str]) -> Path:
    (root / "pyproject.toml").write_text(
        "[tool.pytest.ini_options]\n"
        'testpaths = ["tests"]\n'
        'addopts = ["-p", "no:cacheprovider"]\n'
        'asyncio_default_fixture_loop_scope = "function"\n'
    )
    tests = root / "tests"
    tests.mkdir()
    shutil.copy(TESTS / "conftest.py", tests / "conftest.py")
    for name in folders:
        (tests / name).mkdir()
        (tests / name / f"test_{name}.py").write_text("def test_it() -> None:\n    assert 1\n")
    return root


def _collect(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "pytest", "--co", "-q", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_a_folder_pytest_skips_fails_the_whole_suite(tmp_path: Path) -> None:
    root = _project(tmp_path, ["core", "dist"])
    run = _collect(root)
    assert run.returncode != 0, run.stdout
    error = next(line for line in (run.stdout + run.stderr).splitlines() if "ERROR" in line)
    assert "collected no tests" in error
    assert "tests/dist" in error
    assert "tests/core" not in error


def test_selecting_one_file_is_not_a_whole_suite_run(tmp_path: Path) -> None:
    root = _project(tmp_path, ["core", "dist"])
    run = _collect(root, "tests/core/test_core.py")
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_folder_collected_passes(tmp_path: Path) -> None:
    root = _project(tmp_path, ["core", "release"])
    run = _collect(root, "-m", "not slow")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 tests collected" in run.stdout

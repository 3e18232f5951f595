"""The README's quick start is what CI runs, and it works as written.

CI runs `.ci/run` in a fresh clone. Here `.ci/run` itself runs, with `make`
replaced on PATH by a recorder (running the real targets would recurse into this
suite): it must run lint and typecheck, `make demo` in a new clone of what is
committed, and `make test` last. The README's two commands are then run by real
`make` in dry-run mode, which fails for a target that does not exist.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.dist


def quick_start_commands() -> list[str]:
    """The shell commands of the README's quick start block, comments dropped."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "README: the quick start has no ```sh block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def _recording_make(bin_dir: Path, log: Path) -> None:
    make = bin_dir / "make"
    make.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s|%s\\n" "$PWD" "$*" >> "{log}"\n'
        # the demo's clone must hold the committed tree: record whether it does
        'if [ "$1" = "-C" ]; then [ -f "$2/Makefile" ] && [ -d "$2/.git" ] '
        f'&& echo "clone-ok|$2" >> "{log}"; fi\n'
        "exit 0\n"
    )
    make.chmod(0o755)


def test_ci_runs_lint_typecheck_the_demo_in_a_fresh_clone_then_the_tests(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (CI's own run is one)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "make.log"
    _recording_make(bin_dir, log)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(  # noqa: S603 (the project's own CI script)
        ["bash", str(ROOT / ".ci" / "run")],  # noqa: S607
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    calls = [line.split("|", 1) for line in log.read_text().splitlines()]
    made = [args for where, args in calls if where != "clone-ok"]
    assert made[0] == "lint"
    assert made[1] == "typecheck"
    assert made[-1] == "test", "make test must run last, so its summary closes the log"
    demo = [args for args in made if args.endswith(" demo")]
    assert len(demo) == 1
    clone_dir = demo[0].split()[1]
    assert clone_dir != str(ROOT)  # a fresh clone, not the work tree
    assert ["clone-ok", clone_dir] in calls
    assert not Path(clone_dir).exists()  # and it is removed afterwards
    for where, _args in calls:
        if where != "clone-ok":
            assert Path(where) == ROOT


def test_readme_quick_start_commands_are_real_targets() -> None:
    commands = quick_start_commands()
    assert commands == ["make test", "make demo"]
    for command in commands:
        target = command.split()[1]
        dry = subprocess.run(  # noqa: S603
            ["make", "-n", target],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert dry.returncode == 0, f"make -n {target}: {dry.stderr}"
        assert dry.stdout.strip(), f"make -n {target} would run nothing"

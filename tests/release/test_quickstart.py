"""The README's quick start is exactly what CI runs on a clean clone.

CI runs `.ci/run` in a fresh clone: it runs `make demo` in a new `git clone` of that
checkout, then `make test` (last, so the test summary closes the log). This test
keeps the README and `.ci/run` in step (it does not run them: `make test` must not
recurse into itself).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "README: the quick start has no ```sh block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_quick_start_is_the_two_commands() -> None:
    assert quick_start_commands() == ["make test", "make demo"]


def test_ci_runs_both_commands_and_the_demo_in_a_fresh_clone() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    clone_at = script.index("git clone")
    demo_at = script.index('make -C "$demo_dir/lumid-plugins" demo')
    test_at = script.rindex("make test")
    assert clone_at < demo_at < test_at
    assert script.rstrip().endswith("make test")


def test_makefile_has_the_quick_start_targets() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("test", "demo"):
        assert re.search(rf"^{target}:.*## ", makefile, re.MULTILINE), target

"""`lumid` starts without the heavy libraries: each command imports what it needs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("fastapi", "httpx", "pydantic", "pydantic_settings", "lumid_hooks", "starlette")


def _imported_after(code: str) -> set[str]:
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_importing_the_cli_pulls_in_no_web_or_settings_library() -> None:
    assert _imported_after("import lumid_core.cli") == set()


def test_importing_the_core_package_is_lazy_but_its_names_still_work() -> None:
    assert _imported_after("import lumid_core") == set()
    assert "pydantic" in _imported_after("from lumid_core import LumidSettings")


@pytest.mark.parametrize("argv", [["--help"], ["acl", "--help"], ["billing", "ls", "--help"]])
def test_help_imports_no_heavy_library_nor_the_database_layer(argv: list[str]) -> None:
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['lumid', *{argv!r}]\n"
        "try:\n"
        "    runpy.run_module('lumid_core.cli', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'aiosqlite' not in sys.modules, 'aiosqlite imported for --help'"
    )
    assert _imported_after(code) == set()


def test_billing_states_match_the_outbox() -> None:
    from lumid_core.cli.billing import STATES as CLI_STATES
    from lumid_core.outbox import STATES

    assert tuple(CLI_STATES) == tuple(STATES)

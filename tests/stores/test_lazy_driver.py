"""The PostgreSQL driver loads only when LUMID_DATABASE_URL selects it."""

from __future__ import annotations

import subprocess
import sys


def test_sqlite_servers_and_the_cli_never_import_asyncpg() -> None:
    code = (
        "import sys, lumid_core, lumid_core.cli, lumid_core.runtime, "
        "lumid_flowmesh_plugin, lumid_lumilake_plugin; "
        "print('asyncpg' in sys.modules)"
    )
    out = subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"

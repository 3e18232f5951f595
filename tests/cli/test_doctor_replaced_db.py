"""`lumid doctor` (a real subprocess) sees that a running server's database file was
replaced under it (issue 16): the server recorded the identity of the file it opened."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

from lumid_core.db import Database
from lumid_fakes import FakeLumId

type Cli = Callable[..., CompletedProcess[str]]


def _database_line(r: CompletedProcess[str]) -> str:
    (line,) = [row for row in r.stdout.splitlines() if row[6:].startswith("database  ")]
    return line


async def test_doctor_fails_when_the_server_file_was_replaced(
    cli: Cli, cli_env: dict[str, str], fake_lumid: FakeLumId, db_path: Path
) -> None:
    cli_env["LUM_ID_BASE_URL"] = fake_lumid.url
    server = await Database.open(db_path, watch=True)  # what install() opens
    try:
        before = cli("doctor", "--host", "flowmesh")
        assert _database_line(before).startswith("OK"), before.stdout
        fresh = db_path.with_name("fresh.sqlite")
        sqlite3.connect(fresh).close()
        os.replace(fresh, db_path)  # "rm the db and start over" while the server runs
        after = cli("doctor", "--host", "flowmesh")
        line = _database_line(after)
        assert line.startswith("FAIL"), after.stdout
        assert f"server pid {os.getpid()}" in line
        assert "LUMID_ACL_DB_PATH" in line
        assert after.returncode == 1
    finally:
        await server.close()
    healed = cli("doctor", "--host", "flowmesh")
    assert _database_line(healed).startswith("OK"), healed.stdout

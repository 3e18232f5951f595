"""`lumid` reads without writing, and bad input is a clean error (issue 15)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from lumid_core import Database, Level, SqliteGrantStore
from lumid_core.db import MIGRATIONS, SCHEMA_VERSION
from lumid_core.limits import MAX_ID_BYTES
from lumid_core.outbox import NewEntry, Outbox

type Cli = Callable[..., CompletedProcess[str]]

READS = [
    ["acl", "ls"],
    ["acl", "export"],
    ["billing", "status"],
    ["billing", "ls"],
    ["billing", "ls", "--dead"],
]


async def _fill(path: Path, grants: int = 3) -> None:
    db = await Database.open(path)
    try:
        store = SqliteGrantStore(db)
        for i in range(grants):
            await store.grant("workflow", f"wf-{i}", "alice", Level.READ)
        await Outbox(db, "runmesh").add(
            [
                NewEntry(
                    key="t-1",
                    payload={"taskId": "t-1"},
                    reason="bad \x1b[2J\x1b[31mred\x07 reason\r",
                    dead=True,
                )
            ]
        )
    finally:
        await db.close()


def _no_traceback(r: CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stdout + r.stderr


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_reads_work_on_a_read_only_copy_and_change_nothing(
    cli: Cli, db_path: Path, tmp_path: Path, args: list[str]
) -> None:
    asyncio.run(_fill(db_path))
    folder = tmp_path / "snapshot"
    folder.mkdir()
    copy = folder / "acl.sqlite"
    shutil.copy(db_path, copy)
    copy.chmod(0o444)
    folder.chmod(0o555)
    try:
        before = copy.read_bytes()
        r = cli(*args, "--db", str(copy))
        assert r.returncode == 0, r.stderr
        _no_traceback(r)
        assert copy.read_bytes() == before  # (SQLite's reader may add -wal/-shm beside it)
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_reads_never_wait_for_a_writer_holding_the_lock(
    cli: Cli, db_path: Path, args: list[str]
) -> None:
    asyncio.run(_fill(db_path))
    writer = subprocess.Popen(  # noqa: S603 - another process holding BEGIN IMMEDIATE
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "c.execute(\"UPDATE grants SET level = 2 WHERE id = 'wf-0'\")\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
            str(db_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "locked"
        started = time.monotonic()
        r = cli(*args)
        elapsed = time.monotonic() - started
        assert r.returncode == 0, r.stderr
        assert elapsed < 3, f"{args} waited {elapsed:.1f}s for the writer"
        if args[:2] == ["acl", "ls"]:
            assert "read" in r.stdout.split("wf-0", 1)[1].splitlines()[0]  # uncommitted: not seen
    finally:
        writer.kill()
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()


def test_an_older_schema_is_read_as_it_is_and_not_migrated(cli: Cli, db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.executescript(";\n".join(MIGRATIONS[0]))
        conn.execute("INSERT INTO grants VALUES ('workflow', 'wf-1', 'bob', 1, 1.0, 1.0)")
        conn.execute("PRAGMA user_version = 1")
    r = cli("acl", "ls")
    assert r.returncode == 0, r.stderr
    assert "wf-1" in r.stdout
    b = cli("billing", "status")
    assert b.returncode == 1
    assert "schema v1 has no billing outbox yet" in b.stderr
    _no_traceback(b)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "outbox" not in tables


def test_an_unmigrated_0_2_layout_is_a_clear_message(cli: Cli, db_path: Path) -> None:
    from lumid_fakes.legacy_db import iso, write_legacy_db

    now = iso(time.time())
    write_legacy_db(db_path, [("workflow", "wf-1", "bob", 2, now, now)])
    before = db_path.read_bytes()
    for args in (["acl", "ls"], ["acl", "export"]):
        r = cli(*args)
        assert r.returncode == 1
        assert "1 grants in the lumid-plugins 0.2.x table acl_grants" in r.stderr
        assert "not migrated yet" in r.stderr
        assert "LUMID_ACL_DB_PATH" in r.stderr
        _no_traceback(r)
    assert db_path.read_bytes() == before  # reading migrates nothing
    doctor = cli("doctor", "--host", "flowmesh")
    assert "unmigrated lumid-plugins 0.2.1+ table acl_grants holds 1 grants" in doctor.stdout
    assert db_path.read_bytes() == before


def test_a_newer_schema_is_refused(cli: Cli, db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    r = cli("billing", "ls")
    assert r.returncode == 1
    assert "newer than this lumid-core understands" in r.stderr


# -- input that used to crash ---------------------------------------------------------


def test_limit_out_of_range_is_a_usage_error(cli: Cli, db_path: Path) -> None:
    asyncio.run(_fill(db_path))
    r = cli("billing", "ls", "--limit", "99999999999999999999")
    assert r.returncode == 2
    assert "--limit: must be at most" in r.stderr
    _no_traceback(r)


@pytest.mark.parametrize("cmd", [["status"], ["ls"], ["retry", "--all-dead"]])
def test_empty_sink_is_a_usage_error(cli: Cli, db_path: Path, cmd: list[str]) -> None:
    asyncio.run(_fill(db_path))
    r = cli("billing", *cmd, "--sink", "")
    assert r.returncode == 2
    assert "--sink: must not be empty" in r.stderr
    _no_traceback(r)


def test_unknown_sink_lists_the_known_ones(cli: Cli, db_path: Path) -> None:
    asyncio.run(_fill(db_path))
    r = cli("billing", "status", "--sink", "runmsh")
    assert r.returncode == 1
    assert "no such outbox sink (known: runmesh)" in r.stderr


BAD_BYTES = os.fsdecode(b"wf-\xff")


@pytest.mark.parametrize(
    "args",
    [
        ["acl", "grant", "--kind", "workflow", "--id", BAD_BYTES, "--principal", "p"],
        ["acl", "grant", "--kind", "workflow", "--id", "wf", "--principal", BAD_BYTES],
        ["acl", "ls", "--id", BAD_BYTES],
        ["billing", "retry", "--task", BAD_BYTES],
    ],
    ids=["grant --id", "grant --principal", "ls --id", "retry --task"],
)
def test_non_utf8_argument_bytes_are_a_usage_error(
    cli: Cli, db_path: Path, args: list[str]
) -> None:
    asyncio.run(_fill(db_path))
    r = cli(*args, "--any-kind") if args[1] == "grant" else cli(*args)
    assert r.returncode == 2, r.stderr
    assert "not valid text" in r.stderr
    _no_traceback(r)


@pytest.mark.parametrize("args", [["acl", "ls"], ["acl", "export"], ["billing", "ls"]])
def test_a_full_output_device_is_one_line_exit_1(db_path: Path, args: list[str]) -> None:
    asyncio.run(_fill(db_path, grants=3000))
    with open("/dev/full", "w") as full:
        r = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "lumid_core.cli", *args, "--db", str(db_path)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"lumid: error: lumid {' '.join(args)}: cannot write the output (No space left on device)"
    ], r.stderr


def test_db_option_empty_is_a_usage_error(cli: Cli) -> None:
    r = cli("acl", "ls", "--db", "")
    assert r.returncode == 2
    assert "--db: empty path" in r.stderr


def test_lowercase_db_variable_is_honoured_like_the_server_does(
    cli_env: dict[str, str], db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lumid_core import LumidSettings, load_settings

    asyncio.run(_fill(db_path))
    env = {k: v for k, v in cli_env.items() if k != "LUMID_ACL_DB_PATH"}
    env["lumid_acl_db_path"] = str(db_path)
    r = subprocess.run(
        [sys.executable, "-m", "lumid_core.cli", "acl", "ls"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "wf-0" in r.stdout
    monkeypatch.delenv("LUMID_ACL_DB_PATH", raising=False)
    monkeypatch.setenv("lumid_acl_db_path", str(db_path))
    assert load_settings(LumidSettings).lumid_acl_db_path == db_path


def test_billing_ls_escapes_control_characters_in_reasons(cli: Cli, db_path: Path) -> None:
    asyncio.run(_fill(db_path))
    r = cli("billing", "ls", "--dead")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout
    assert "\x07" not in r.stdout
    assert "\\x1b[2J" in r.stdout


# -- one id rule for grant and import -------------------------------------------------


def test_import_checks_kinds_like_grant_does(cli: Cli) -> None:
    line = '{"kind":"wrokflow","id":"wf-1","principal_id":"p","level":"read"}\n'
    r = cli("acl", "import", stdin=line)
    assert r.returncode == 1
    assert "no installed plugin checks grants of kind 'wrokflow'" in r.stderr
    assert "nothing imported" in r.stderr
    assert cli("acl", "import", "--any-kind", stdin=line).returncode == 0


@pytest.mark.parametrize("field", ["kind", "principal_id"])
def test_surrounding_whitespace_is_refused_not_stripped(cli: Cli, field: str) -> None:
    obj = {"kind": "workflow", "id": "wf-1", "principal_id": "p", "level": "read"}
    obj[field] = f" {obj[field]} "
    r = cli("acl", "import", stdin=json.dumps(obj) + "\n")
    assert r.returncode == 1
    assert "leading or trailing whitespace" in r.stderr
    option = "--kind" if field == "kind" else "--principal"
    args = {"--kind": "workflow", "--id": "wf-1", "--principal": "p", option: " x "}
    g = cli("acl", "grant", "--level", "read", *[a for kv in args.items() for a in kv])
    assert g.returncode == 2
    assert "leading or trailing whitespace" in g.stderr


def test_a_resource_id_is_kept_exactly_on_both_paths(cli: Cli) -> None:
    line = '{"kind":"workflow","id":" sp ","principal_id":"p","level":"read"}\n'
    assert cli("acl", "import", stdin=line).returncode == 0
    r = cli("acl", "revoke", "--kind", "workflow", "--id", " sp ", "--principal", "p")
    assert r.returncode == 0, r.stderr


def test_ids_longer_than_the_limit_are_refused(cli: Cli) -> None:
    long_id = "x" * (MAX_ID_BYTES + 1)
    g = cli("acl", "grant", "--kind", "workflow", "--id", long_id, "--principal", "p",
            "--level", "read")  # fmt: skip
    assert g.returncode == 2
    assert f"longer than {MAX_ID_BYTES} bytes" in g.stderr
    line = json.dumps({"kind": "workflow", "id": long_id, "principal_id": "p", "level": "read"})
    r = cli("acl", "import", stdin=line + "\n")
    assert r.returncode == 1
    assert f"longer than {MAX_ID_BYTES} bytes" in r.stderr
    ok = "y" * MAX_ID_BYTES
    assert cli("acl", "grant", "--kind", "workflow", "--id", ok, "--principal", "p",
               "--level", "read").returncode == 0  # fmt: skip


# -- the entry point, Ctrl-C ----------------------------------------------------------


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(
    cli: Cli, db_path: Path
) -> None:
    # A file that is a SQLite database whose grants table has the wrong columns.
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE grants (x)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    r = cli("acl", "ls")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("lumid: error: lumid acl ls failed unexpectedly: OperationalError")
    assert "--debug" in lines[0]
    d = cli("--debug", "acl", "ls")
    assert d.returncode == 1
    assert "Traceback" in d.stderr


def test_ctrl_c_during_a_long_import_says_how_many_landed(
    cli_env: dict[str, str], db_path: Path, tmp_path: Path
) -> None:
    asyncio.run(_fill(db_path, grants=0))
    source = tmp_path / "grants.jsonl"
    with source.open("w") as out:
        for i in range(60_000):
            out.write(
                json.dumps(
                    {"kind": "workflow", "id": f"w{i}", "principal_id": "p", "level": "read"}
                )
                + "\n"
            )
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "lumid_core.cli", "acl", "import", str(source)],
        env=cli_env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        landed = 0
        while landed == 0 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
                landed = conn.execute("SELECT count(*) FROM grants").fetchone()[0]
        assert landed > 0, "nothing landed within 30 s"
        assert proc.poll() is None, "the import finished before Ctrl-C"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted;" in err
    assert "of 60000 grants were imported before it" in err
    assert "Traceback" not in err


def test_read_only_copy_mode_is_really_read_only(tmp_path: Path) -> None:
    """Guard for the test above: chmod 0444 really refuses writes (not root-bypassed
    at the SQLite level when opened read-only)."""
    path = tmp_path / "x.sqlite"
    sqlite3.connect(path).close()
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    assert path.stat().st_mode & 0o777 == 0o444

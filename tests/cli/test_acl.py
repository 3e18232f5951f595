"""`lumid acl` as a subprocess, against real database files (and a live engine on them)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import TYPE_CHECKING

import pytest
from lumid_hooks import PrincipalContext

from lumid_core import (
    Database,
    Grant,
    Level,
    PermissionEngine,
    Policy,
    SqliteGrantStore,
    SqlitePrincipalDirectory,
)

if TYPE_CHECKING:
    from tests.conftest import Allowed

type Cli = Callable[..., CompletedProcess[str]]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_grant_ls_revoke_round(cli: Cli, db_path: Path) -> None:
    r = cli(
        "acl",
        "grant",
        "--kind",
        "workflow",
        "--id",
        "wf-1",
        "--principal",
        "bob",
        "--level",
        "read",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "granted read on workflow 'wf-1' to bob"
    assert db_path.is_file()
    cli("acl", "grant", "--kind", "job", "--id", "j-9", "--principal", "carol", "--level", "write")

    everything = cli("acl", "ls")
    assert everything.returncode == 0
    rows = _lines(everything.stdout)
    assert rows[0].split() == ["KIND", "ID", "PRINCIPAL", "LEVEL", "GRANTED"]
    assert [r.split()[:4] for r in rows[1:]] == [
        ["job", "j-9", "carol", "write"],
        ["workflow", "wf-1", "bob", "read"],
    ]
    only_bob = cli("acl", "ls", "--principal", "bob")
    assert [r.split()[:4] for r in _lines(only_bob.stdout)[1:]] == [
        ["workflow", "wf-1", "bob", "read"]
    ]
    by_kind_and_id = cli("acl", "ls", "--kind", "job", "--id", "j-9")
    assert len(_lines(by_kind_and_id.stdout)) == 2

    revoked = cli("acl", "revoke", "--kind", "workflow", "--id", "wf-1", "--principal", "bob")
    assert revoked.returncode == 0
    assert "revoked bob's grant on workflow 'wf-1'" in revoked.stdout
    nothing = cli("acl", "ls", "--principal", "bob")
    assert nothing.returncode == 0
    assert nothing.stdout == ""
    assert "no grants match" in nothing.stderr


def test_grant_never_lowers_and_says_so(cli: Cli) -> None:
    cli("acl", "grant", "--kind", "job", "--id", "j", "--principal", "p", "--level", "write")
    r = cli("acl", "grant", "--kind", "job", "--id", "j", "--principal", "p", "--level", "read")
    assert r.returncode == 0
    assert "p already holds write on job 'j'; kept" in r.stdout
    assert _lines(cli("acl", "ls").stdout)[1].split()[3] == "write"


def test_grant_refuses_kinds_no_plugin_checks(cli: Cli, db_path: Path) -> None:
    typo = cli(
        "acl", "grant", "--kind", "workfow", "--id", "w", "--principal", "p", "--level", "read"
    )
    assert typo.returncode == 1
    assert "no installed plugin checks grants of kind 'workfow' (known: " in typo.stderr
    assert "workflow" in typo.stderr
    assert "pass --any-kind" in typo.stderr
    owned = cli(
        "acl", "grant", "--kind", "result", "--id", "t", "--principal", "p", "--level", "read"
    )
    assert owned.returncode == 1
    assert "flowmesh checks a result against the task grant of the same id" in owned.stderr
    assert not db_path.exists()
    forced = cli(
        "acl",
        "grant",
        "--kind",
        "workfow",
        "--id",
        "w",
        "--principal",
        "p",
        "--level",
        "read",
        "--any-kind",
    )
    assert forced.returncode == 0
    assert "granted read on workfow 'w' to p" in forced.stdout


def test_revoke_of_a_missing_grant_fails(cli: Cli) -> None:
    cli("acl", "grant", "--kind", "job", "--id", "j", "--principal", "p", "--level", "read")
    r = cli("acl", "revoke", "--kind", "job", "--id", "j", "--principal", "someone-else")
    assert r.returncode == 1
    assert "someone-else holds no grant on job 'j'; nothing revoked" in r.stderr


def test_reading_a_missing_database_names_the_variable_and_creates_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "acl.sqlite"
    r = cli("acl", "ls", env={"LUMID_ACL_DB_PATH": str(missing)})
    assert r.returncode == 1
    assert f"LUMID_ACL_DB_PATH={str(missing)!r}: no database there" in r.stderr
    assert not missing.parent.exists()
    r = cli("acl", "export", "--db", str(missing))
    assert r.returncode == 1
    assert f"--db={str(missing)!r}: no database there" in r.stderr


def test_db_option_overrides_the_variable(cli: Cli, tmp_path: Path, db_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    r = cli(
        "acl",
        "grant",
        "--db",
        str(other),
        "--kind",
        "job",
        "--id",
        "i",
        "--principal",
        "p",
        "--level",
        "read",
    )
    assert r.returncode == 0
    assert other.is_file()
    assert not db_path.exists()


def test_unwritable_database_path_fails_naming_the_variable(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = blocker / "acl.sqlite"
    r = cli(
        "acl",
        "grant",
        "--kind",
        "job",
        "--id",
        "i",
        "--principal",
        "p",
        "--level",
        "read",
        env={"LUMID_ACL_DB_PATH": str(bad)},
    )
    assert r.returncode == 1
    assert r.stderr.startswith(
        f"lumid: error: LUMID_ACL_DB_PATH={str(bad)!r}: cannot create its folder"
    )
    not_sqlite = tmp_path / "garbage.sqlite"
    not_sqlite.write_bytes(b"this is not sqlite" * 100)
    r = cli("acl", "ls", "--db", str(not_sqlite))
    assert r.returncode == 1
    assert "--db=" in r.stderr
    assert "not a SQLite database" in r.stderr


def test_export_import_round_trip_keeps_levels_and_times(cli: Cli, tmp_path: Path) -> None:
    cli(
        "acl",
        "grant",
        "--kind",
        "workflow",
        "--id",
        "wf-1",
        "--principal",
        "bob",
        "--level",
        "read",
    )
    cli("acl", "grant", "--kind", "task", "--id", "t-1", "--principal", "alice", "--level", "write")
    exported = cli("acl", "export")
    assert exported.returncode == 0
    assert "exported 2 grants" in exported.stderr
    records = [json.loads(line) for line in _lines(exported.stdout)]
    assert [(g["kind"], g["id"], g["principal_id"], g["level"]) for g in records] == [
        ("task", "t-1", "alice", "write"),
        ("workflow", "wf-1", "bob", "read"),
    ]
    dump = tmp_path / "grants.jsonl"
    dump.write_text(exported.stdout)

    moved = tmp_path / "moved" / "acl.sqlite"
    r = cli("acl", "import", "--db", str(moved), str(dump))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"imported 2 grants from {dump} into {moved}"
    again = cli("acl", "export", "--db", str(moved))
    assert [json.loads(line) for line in _lines(again.stdout)] == records

    # stdin works too, and an import never lowers a level
    r = cli(
        "acl",
        "import",
        "--db",
        str(moved),
        stdin='{"kind":"task","id":"t-1","principal_id":"alice","level":"read"}\n\n'
        '{"kind":"job","id":"j","principal_id":"zoe","level":"read"}\n',
    )
    assert r.returncode == 0, r.stderr
    levels = {
        (g["kind"], g["principal_id"]): g["level"]
        for g in map(json.loads, _lines(cli("acl", "export", "--db", str(moved)).stdout))
    }
    assert levels == {
        ("task", "alice"): "write",
        ("workflow", "bob"): "read",
        ("job", "zoe"): "read",
    }


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("{not json", "not JSON"),
        ('["a"]', "expected a JSON object"),
        ('{"kind":"k","id":"i","principal_id":"p","level":"admin"}', "'level' must be"),
        (
            '{"kind":"","id":"i","principal_id":"p","level":"read"}',
            "'kind' must be a non-empty string",
        ),
        ('{"kind":"k","id":"i","level":"read"}', "'principal_id' must be a non-empty string"),
        (
            '{"kind":"k","id":"i","principal_id":"p","level":"read","granted_at":"x"}',
            "'granted_at'",
        ),
    ],
)
def test_a_bad_import_line_imports_nothing(cli: Cli, db_path: Path, line: str, why: str) -> None:
    good = '{"kind":"job","id":"ok","principal_id":"p","level":"read"}'
    r = cli("acl", "import", stdin=f"{good}\n{line}\n")
    assert r.returncode == 1
    assert r.stderr.startswith("lumid: error: <stdin>:2: ")
    assert why in r.stderr
    assert not db_path.exists()  # validated before the database is even opened


@pytest.mark.parametrize(
    "times",
    [
        '"granted_at":1e300',  # `acl ls` could not print it (datetime overflow)
        '"granted_at":-86400',
        '"last_seen_at":1e15',  # far future: immune to the startup reconcile sweep
    ],
)
def test_import_refuses_impossible_times(cli: Cli, db_path: Path, times: str) -> None:
    line = '{"kind":"job","id":"j","principal_id":"p","level":"read",' + times + "}"
    r = cli("acl", "import", stdin=line + "\n")
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith("lumid: error: <stdin>:1: ")
    assert "seconds since the epoch" in r.stderr
    assert not db_path.exists()


def test_import_of_a_file_that_is_not_utf8_is_a_clean_error(
    cli: Cli, tmp_path: Path, db_path: Path
) -> None:
    dump = tmp_path / "latin1.jsonl"
    dump.write_bytes(b'{"kind":"job","id":"caf\xe9","principal_id":"p","level":"read"}\n')
    r = cli("acl", "import", str(dump))
    assert r.returncode == 1
    assert r.stderr.startswith(f"lumid: error: {dump}: ")
    assert "UTF-8" in r.stderr
    assert "Traceback" not in r.stderr
    assert not db_path.exists()


def test_import_of_a_missing_file(cli: Cli, tmp_path: Path) -> None:
    r = cli("acl", "import", str(tmp_path / "absent.jsonl"))
    assert r.returncode == 1
    assert "absent.jsonl: cannot read" in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["acl"],
        ["acl", "frobnicate"],
        ["acl", "grant", "--kind", "k", "--id", "i", "--principal", "p"],
        ["acl", "grant", "--kind", "k", "--id", "i", "--principal", "p", "--level", "owner"],
        ["acl", "grant", "--kind", " ", "--id", "i", "--principal", "p", "--level", "read"],
        ["acl", "revoke", "--kind", "k", "--id", "i"],
        ["acl", "ls", "--level", "read"],
        ["acl", "import", "a", "b"],
    ],
)
def test_bad_arguments_are_usage_errors(cli: Cli, args: list[str]) -> None:
    r = cli(*args)
    assert r.returncode == 2
    assert "usage: lumid" in r.stderr
    assert r.stdout == ""


# -- a running server's engine sees what the CLI does ------------------------------

_POLICY = Policy.build(
    kinds=["workflow"],
    admin_scopes=["admin"],
    kind_scopes={("workflow", "read"): ["wf:read"], ("workflow", "write"): ["wf:write"]},
)


@pytest.fixture
async def live_engine(db_path: Path) -> AsyncIterator[PermissionEngine]:
    """A server-side engine holding the database open while the CLI works on it."""
    db = await Database.open(db_path)
    try:
        yield PermissionEngine(name="server", policy=_POLICY, store=SqliteGrantStore(db))
    finally:
        await db.close()


async def test_a_running_engine_honours_cli_grants_and_revokes(
    cli: Cli, live_engine: PermissionEngine, allowed: Allowed
) -> None:
    bob = PrincipalContext(
        principal_id="bob",
        org_id="o",
        external_id="bob",
        principal_type="user",
        scopes=["wf:read", "wf:write"],
    )
    assert not await allowed(live_engine, bob, "workflow", "wf-1", "read")
    assert (
        cli(
            "acl",
            "grant",
            "--kind",
            "workflow",
            "--id",
            "wf-1",
            "--principal",
            "bob",
            "--level",
            "read",
        ).returncode
        == 0
    )
    assert await allowed(live_engine, bob, "workflow", "wf-1", "read")
    assert not await allowed(live_engine, bob, "workflow", "wf-1", "write")
    assert await live_engine.accessible_ids(
        bob, "workflow", "read", logging.getLogger("t")
    ) == frozenset({"wf-1"})
    assert (
        cli("acl", "revoke", "--kind", "workflow", "--id", "wf-1", "--principal", "bob").returncode
        == 0
    )
    assert not await allowed(live_engine, bob, "workflow", "wf-1", "read")
    assert (
        await live_engine.accessible_ids(bob, "workflow", "read", logging.getLogger("t"))
        == frozenset()
    )


async def test_cli_import_while_the_server_writes(
    cli_env: dict[str, str], db_path: Path, tmp_path: Path
) -> None:
    """A big import runs in short transactions: the server's writes keep landing meanwhile."""
    rows = 30_000  # several import transactions
    dump = tmp_path / "big.jsonl"
    dump.write_text(
        "".join(
            json.dumps({"kind": "job", "id": f"j{i}", "principal_id": "bulk", "level": "read"})
            + "\n"
            for i in range(rows)
        )
    )
    db = await Database.open(db_path)
    try:
        store = SqliteGrantStore(db)
        await store.grant("workflow", "before", "alice", Level.WRITE)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lumid_core.cli",
            "acl",
            "import",
            str(dump),
            env=cli_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        written = 0
        while proc.returncode is None:  # the server keeps registering resources
            await store.grant("workflow", f"during-{written}", "alice", Level.WRITE)
            written += 1
            await asyncio.sleep(0.005)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert out.decode().startswith(f"imported {rows} grants from {dump}")
        assert len(await store.ids("job", "bulk", Level.READ)) == rows
        mine = await store.ids("workflow", "alice", Level.WRITE)
        assert mine == {"before"} | {f"during-{i}" for i in range(written)}
        assert written > 0
    finally:
        await db.close()


async def test_ls_streams_a_large_store(cli: Cli, db_path: Path) -> None:
    db = await Database.open(db_path)
    try:
        await SqliteGrantStore(db).import_grants(
            Grant("job", f"j{i:05d}", "p" * (1 + i % 7), Level.READ, 1.0, 1.0) for i in range(2500)
        )
    finally:
        await db.close()
    r = cli("acl", "ls", "--kind", "job")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2501
    assert [line.split()[1] for line in lines[1:]] == [f"j{i:05d}" for i in range(2500)]
    assert all(line.split()[3] == "read" for line in lines[1:])


async def test_principals_by_email(cli: Cli, db_path: Path) -> None:
    db = await Database.open(db_path)
    try:
        directory = SqlitePrincipalDirectory(db)
        await directory.record("u-bob", "bob@example.com")
        await directory.record("u-twin-1", "twin@example.com")
        await directory.record("u-twin-2", "twin@example.com")
    finally:
        await db.close()
    r = cli(
        "acl",
        "grant",
        "--kind",
        "job",
        "--id",
        "j",
        "--email",
        "Bob@Example.com",
        "--level",
        "read",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "granted read on job 'j' to u-bob (Bob@Example.com)"
    listed = cli("acl", "ls", "--email", "bob@example.com")
    assert [line.split()[:3] for line in listed.stdout.splitlines()[1:]] == [["job", "j", "u-bob"]]
    exported = cli("acl", "export", "--email", "bob@example.com")
    assert [json.loads(x)["principal_id"] for x in exported.stdout.splitlines()] == ["u-bob"]

    unknown = cli(
        "acl",
        "grant",
        "--kind",
        "job",
        "--id",
        "j",
        "--email",
        "eve@example.com",
        "--level",
        "read",
    )
    assert unknown.returncode == 1
    assert (
        "--email 'eve@example.com': no principal with that email has used this server"
        in unknown.stderr
    )
    twins = cli("acl", "revoke", "--kind", "job", "--id", "j", "--email", "twin@example.com")
    assert twins.returncode == 1
    assert "matches several principals (u-twin-1, u-twin-2); give --principal" in twins.stderr

    revoked = cli("acl", "revoke", "--kind", "job", "--id", "j", "--email", "bob@example.com")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked u-bob (bob@example.com)'s grant on job 'j'" in revoked.stdout
    both = cli("acl", "ls", "--email", "bob@example.com", "--principal", "u-bob")
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr


async def test_ls_never_writes_control_characters_to_the_terminal(cli: Cli, db_path: Path) -> None:
    """Artifact ids carry user-chosen file names: an escape sequence in one must not
    reach the operator's terminal through `acl ls` (export, JSON, escapes it already)."""
    db = await Database.open(db_path)
    try:
        await SqliteGrantStore(db).grant(
            "artifact", "job-1/\x1b]0;owned\x07x\r\nfake.csv", "alice", Level.WRITE
        )
    finally:
        await db.close()
    r = cli("acl", "ls")
    assert r.returncode == 0, r.stderr
    for control in ("\x1b", "\x07", "\r"):
        assert control not in r.stdout
    rows = _lines(r.stdout)
    assert len(rows) == 2
    assert "job-1/\\x1b]0;owned\\x07x\\r\\nfake.csv" in rows[1]


async def test_export_import_keeps_ids_exactly(cli: Cli, db_path: Path, tmp_path: Path) -> None:
    """Moving a database must not rename resources: an artifact named "out.csv " (a
    user-chosen file name) must not become "out.csv", which may be someone else's."""
    db = await Database.open(db_path)
    try:
        await SqliteGrantStore(db).grant("artifact", "job-1/out.csv ", "bob", Level.READ)
    finally:
        await db.close()
    exported = cli("acl", "export")
    assert exported.returncode == 0, exported.stderr
    moved = tmp_path / "moved.sqlite"
    r = cli("acl", "import", "--db", str(moved), stdin=exported.stdout)
    assert r.returncode == 0, r.stderr
    again = cli("acl", "export", "--db", str(moved))
    assert [json.loads(line)["id"] for line in _lines(again.stdout)] == ["job-1/out.csv "]

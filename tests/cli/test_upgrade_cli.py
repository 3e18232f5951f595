"""An operator upgrading from lumid-plugins 0.2.x: the old env blocks, doctor, acl ls.

The two env blocks are the 0.2.x README's (`lumid_fakes.legacy_db`), as dotenv
text, with loopback URLs for the fakes. `install()` and `lumid doctor` (a real
subprocess) must accept them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from lumid_core import Database, load_settings
from lumid_core.doctor import Status, check_upgrade
from lumid_fakes import FakeLumId, FakeOptimizer, FakeRunmesh
from lumid_fakes.legacy_db import flowmesh_block, iso, lumilake_block, write_legacy_db
from lumid_flowmesh_plugin import install as flowmesh_install
from lumid_flowmesh_plugin.settings import FlowMeshSettings

type Cli = Callable[..., CompletedProcess[str]]

SECRET = "shared-SECRET-6c1f0a"
RUNTIME_TOKEN = "runtime-SECRET-93be1d"

T0 = time.time() - 7 * 86_400
ROWS = [
    ("workflow", "w1", "alice", 2, iso(T0), iso(T0 + 1)),
    ("task", "t1", "alice", 2, iso(T0), iso(T0 + 1)),
    ("workflow", "w1", "bob", 1, iso(T0 + 2), iso(T0 + 3)),
]


def apply(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name in ("LUMID_BALANCE_GUARD", "RUNMESH_BILLING_BASE_URL", "FLOWMESH_BRIDGE_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _line(r: CompletedProcess[str], name: str) -> str:
    found = [line for line in r.stdout.splitlines() if line[6:].startswith(name + "  ")]
    assert len(found) == 1, r.stdout
    return found[0]


async def test_the_flowmesh_block_installs_with_its_0_2_meaning(
    fake_lumid: FakeLumId, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeRunmesh(secret=SECRET) as runmesh:
        env = flowmesh_block(
            lumid=fake_lumid.url, runmesh=runmesh.url, secret=SECRET, db=str(db_path)
        )
        apply(monkeypatch, env)
        write_legacy_db(db_path, ROWS)
        async with AsyncExitStack() as stack:
            bindings = await stack.enter_async_context(flowmesh_install())
            assert bindings.billing is not None  # both billing variables: billing on
            assert len(bindings.submission_guards) == 1  # LUMID_BALANCE_GUARD=on
            assert bindings.permission_checkers
        settings = load_settings(FlowMeshSettings)
        assert settings.lumid_org_id == "lumid"
        assert settings.lumid_acl_db_path == db_path
    # Defaults as in 0.2.x: without the guard variable the guard is off, billing
    # needs both variables.
    monkeypatch.delenv("LUMID_BALANCE_GUARD")
    assert not load_settings(FlowMeshSettings).guard_enabled
    monkeypatch.delenv("FLOWMESH_BRIDGE_SECRET")
    assert not load_settings(FlowMeshSettings).billing_enabled


@pytest.mark.parametrize(
    ("value", "meaning"),
    [
        ("on", "on"),
        ("ON", "on"),
        ("On", "on"),
        ("off", "off"),
        ("OFF", "off"),
        ("0", "off"),
        ("false", "off"),
        ("no", "off"),
        ("", "off"),
    ],
)
def test_balance_guard_values_keep_their_0_2_meaning(
    monkeypatch: pytest.MonkeyPatch, value: str, meaning: str
) -> None:
    monkeypatch.setenv("LUMID_BALANCE_GUARD", value)
    assert load_settings(FlowMeshSettings).balance_guard == meaning


@pytest.mark.parametrize("value", ["1", "true", "yes", "enabled"])
def test_balance_guard_spellings_0_2_read_as_off_stay_off_and_are_reported(
    monkeypatch: pytest.MonkeyPatch, value: str, tmp_path: Path
) -> None:
    """0.2.x enabled the guard for `on` only: `true` meant off. After the image swap
    it still means off (the server starts, nothing changes for submitters), and the
    install log and `lumid doctor` say so, naming the variable."""
    monkeypatch.setenv("LUMID_BALANCE_GUARD", value)
    monkeypatch.setenv("RUNMESH_BILLING_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("FLOWMESH_BRIDGE_SECRET", SECRET)
    settings = load_settings(FlowMeshSettings)
    assert settings.billing_enabled
    assert settings.lumid_balance_guard == value
    assert not settings.guard_enabled
    note = settings.balance_guard_note
    assert note is not None
    assert f"LUMID_BALANCE_GUARD={value!r} reads as off" in note


def test_balance_guard_plain_values_have_no_note(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("on", "OFF", "0", "false", "no"):
        monkeypatch.setenv("LUMID_BALANCE_GUARD", value)
        assert load_settings(FlowMeshSettings).balance_guard_note is None


def test_balance_guard_odd_value_is_a_doctor_warning(cli: Cli, fake_lumid: FakeLumId) -> None:
    env = {"LUM_ID_BASE_URL": fake_lumid.url, "LUMID_BALANCE_GUARD": "true"}
    result = cli("doctor", "--host", "flowmesh", env=env)
    line = _line(result, "balance guard")
    assert line.startswith("WARN"), result.stdout
    assert "LUMID_BALANCE_GUARD='true' reads as off" in line


def test_doctor_accepts_both_blocks_and_reports_the_migration(
    cli: Cli, cli_env: dict[str, str], fake_lumid: FakeLumId, db_path: Path
) -> None:
    write_legacy_db(db_path, ROWS)
    fleet = fake_lumid.add_token(
        "fleet", scopes=["flowmesh:results:write", "flowmesh:nodes:write"], email="f@example.com"
    )
    with FakeRunmesh(secret=SECRET) as runmesh:
        env = flowmesh_block(
            lumid=fake_lumid.url, runmesh=runmesh.url, secret=SECRET, db=str(db_path)
        )
        # `lumid doctor` only reads (issue 15): it reports the pending migration...
        original = db_path.read_bytes()
        first = cli("doctor", "--host", "flowmesh", env={**env, "FLOWMESH_API_KEY": fleet})
        assert first.returncode == 0, first.stdout + first.stderr
        assert _line(first, "upgrade").startswith("WARN")
        assert "acl_grants holds 3 grants" in _line(first, "upgrade")
        assert db_path.read_bytes() == original
        # ... and, once the server's first start has migrated it, says when and how much.
        asyncio.run(open_and_close(db_path))
        r = cli("doctor", "--host", "flowmesh", env={**env, "FLOWMESH_API_KEY": fleet})
    assert r.returncode == 0, r.stdout + r.stderr
    assert not [x for x in r.stdout.splitlines()[:-1] if not x.startswith("OK")], r.stdout
    line = _line(r, "upgrade")
    assert line.startswith("OK")
    assert "3 grants migrated from lumid-plugins 0.2.1+ at " in line
    assert "old table kept as acl_grants_migrated_0_2" in line
    assert SECRET not in r.stdout + r.stderr

    with FakeOptimizer(tokens=[RUNTIME_TOKEN]) as optimizer:
        env = lumilake_block(
            lumid=fake_lumid.url, db=str(db_path), optimizer=optimizer.url, token=RUNTIME_TOKEN
        )
        r = cli("doctor", "--host", "lumilake", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not [x for x in r.stdout.splitlines()[:-1] if not x.startswith("OK")], r.stdout
    assert _line(r, "upgrade").startswith("OK")  # the same file, migrated once
    assert RUNTIME_TOKEN not in r.stdout + r.stderr


def test_doctor_names_a_bad_0_2_row_and_leaves_the_file(
    cli: Cli, fake_lumid: FakeLumId, db_path: Path
) -> None:
    write_legacy_db(db_path, [*ROWS, ("workflow", "w2", "carol", 2, "last tuesday", iso(T0))])
    original = db_path.read_bytes()
    r = cli("doctor", "--host", "flowmesh", env={"LUM_ID_BASE_URL": fake_lumid.url})
    assert r.returncode == 1
    # The database check only reads (issue 15); the upgrade line names what would
    # stop the server's first start.
    assert _line(r, "database").startswith("OK")
    up = _line(r, "upgrade")
    assert up.startswith("FAIL")
    assert "LUMID_ACL_DB_PATH=" in up
    assert "granted_at 'last tuesday'" in up
    assert "Traceback" not in r.stdout + r.stderr
    assert db_path.read_bytes() == original


def test_acl_ls_shows_migrated_grants(cli: Cli, db_path: Path) -> None:
    write_legacy_db(db_path, ROWS, layout="0.2.0")
    original = db_path.read_bytes()
    refused = cli("acl", "ls")  # a reading command only reads (issue 15)
    assert refused.returncode == 1
    assert "holds 3 grants in the lumid-plugins 0.2.x table acl_grants" in refused.stderr
    assert db_path.read_bytes() == original
    # A writing command migrates exactly as the server's first start would.
    g = cli("acl", "grant", "--kind", "workflow", "--id", "w9", "--principal", "eve",
            "--level", "read")  # fmt: skip
    assert g.returncode == 0, g.stderr
    assert "lumid: note: migrated 3 grants from the lumid-plugins 0.2.0 table" in g.stderr
    revoke = ("acl", "revoke", "--kind", "workflow", "--id", "w9", "--principal", "eve")
    assert cli(*revoke).returncode == 0
    r = cli("acl", "ls")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["KIND", "ID", "PRINCIPAL", "LEVEL", "GRANTED"]
    rows = [line.split() for line in lines[1:]]
    granted = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0))
    assert ["task", "t1", "alice", "write", granted] in rows
    assert ["workflow", "w1", "alice", "write", granted] in rows
    assert rows[-1][:4] == ["workflow", "w1", "bob", "read"]
    r = cli("acl", "ls", "--principal", "bob")
    assert "migrated" not in r.stderr  # once only
    assert [line.split()[:4] for line in r.stdout.splitlines()[1:]] == [
        ["workflow", "w1", "bob", "read"]
    ]


def test_doctor_check_on_an_unmigrated_and_a_dropped_archive(db_path: Path) -> None:
    """`check_upgrade` reads only: an unmigrated file (as a read-only open sees it)."""
    assert check_upgrade(db_path) is None  # no file
    write_legacy_db(db_path, ROWS)
    original = db_path.read_bytes()
    check = check_upgrade(db_path)
    assert check is not None
    assert check.status is Status.WARN
    assert check.env_var == "LUMID_ACL_DB_PATH"
    assert "unmigrated lumid-plugins 0.2.1+ table acl_grants holds 3 grants" in check.detail
    assert db_path.read_bytes() == original
    asyncio.run(open_and_close(db_path))
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TABLE acl_grants_migrated_0_2")  # docs/upgrading.md, once satisfied
    conn.commit()
    conn.close()
    check = check_upgrade(db_path)
    assert check is not None
    assert check.status is Status.OK
    assert "old table acl_grants_migrated_0_2 since dropped" in check.detail


def test_doctor_check_is_silent_for_a_file_that_never_saw_0_2(db_path: Path) -> None:
    asyncio.run(open_and_close(db_path))
    assert check_upgrade(db_path) is None


async def open_and_close(path: Path) -> None:
    db = await Database.open(path)
    await db.close()


def test_doctor_warns_when_lumilakes_0_2_database_is_ignored(
    cli: Cli, fake_lumid: FakeLumId, db_path: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old" / "lumid_lumilake_acl.sqlite"
    env = {"LUM_ID_BASE_URL": fake_lumid.url, "LUMID_LUMILAKE_ACL_DB_PATH": str(old)}
    r = cli("doctor", "--host", "lumilake", env=env)
    line = _line(r, "upgrade")
    assert line.startswith("WARN")
    assert "LUMID_LUMILAKE_ACL_DB_PATH=" in line
    assert "neither used nor migrated" in line
    # Without LUMID_ACL_DB_PATH the old variable names the file: its grants migrate.
    write_legacy_db(old, [("job", "j1", "alice", 2, iso(T0), iso(T0))])
    r = cli("doctor", "--host", "lumilake", env={**env, "LUMID_ACL_DB_PATH": ""})
    assert "acl_grants holds 1 grants" in _line(r, "upgrade")  # doctor only reads
    asyncio.run(open_and_close(old))  # the server's first start
    r = cli("doctor", "--host", "lumilake", env={**env, "LUMID_ACL_DB_PATH": ""})
    line = _line(r, "upgrade")
    assert line.startswith("OK")
    assert "1 grants migrated" in line
    assert str(old) in _line(r, "database")

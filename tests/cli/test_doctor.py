"""`lumid doctor` as a subprocess against the loopback fakes and real database files."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, EntryPoints
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from lumid_core.cli import main
from lumid_core.db import Database
from lumid_core.doctor import HostNotInstalledError, load_host_doctor
from lumid_core.outbox import NewEntry, Outbox
from lumid_fakes import FakeLumId, FakeOptimizer, FakeRunmesh

type Cli = Callable[..., CompletedProcess[str]]

BRIDGE_SECRET = "bridge-SECRET-4f1c9e2a7d"
RUNTIME_TOKEN = "runtime-SECRET-8a6b2c1d0e"
FLEET_SCOPES = ["flowmesh:results:write", "flowmesh:nodes:write"]


def _lines(r: CompletedProcess[str]) -> dict[str, list[str]]:
    """check name -> the statuses of its lines (a check may print several)."""
    seen: dict[str, list[str]] = {}
    for line in r.stdout.splitlines()[:-1]:
        status, rest = line.split(maxsplit=1)
        name = rest.split("  ", 1)[0].strip()
        seen.setdefault(name, []).append(status)
    return seen


def _line(r: CompletedProcess[str], name: str) -> str:
    found = [line for line in r.stdout.splitlines() if line[6:].startswith(name + "  ")]
    assert len(found) == 1, r.stdout
    return found[0]


def _no_secret(r: CompletedProcess[str], *secrets: str) -> None:
    for secret in secrets:
        assert secret not in r.stdout
        assert secret not in r.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def runmesh() -> Iterator[FakeRunmesh]:
    with FakeRunmesh(secret=BRIDGE_SECRET) as fake:
        yield fake


@pytest.fixture
def fleet_key(fake_lumid: FakeLumId) -> str:
    return fake_lumid.add_token("fleet", scopes=FLEET_SCOPES, email="fleet@example.com")


@pytest.fixture
def flowmesh_env(
    cli_env: dict[str, str], fake_lumid: FakeLumId, runmesh: FakeRunmesh, fleet_key: str
) -> dict[str, str]:
    cli_env.update(
        LUM_ID_BASE_URL=fake_lumid.url,
        RUNMESH_BILLING_BASE_URL=runmesh.url,
        FLOWMESH_BRIDGE_SECRET=BRIDGE_SECRET,
        FLOWMESH_API_KEY=fleet_key,
    )
    return cli_env


# -- FlowMesh -------------------------------------------------------------------------


def test_flowmesh_all_ok(
    cli: Cli,
    flowmesh_env: dict[str, str],
    fake_lumid: FakeLumId,
    runmesh: FakeRunmesh,
    fleet_key: str,
    db_path: Path,
) -> None:
    r = cli("doctor", "--host", "flowmesh")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _lines(r) == {
        "plugin": ["OK"],
        "settings": ["OK"],
        "database": ["OK"],
        "lum.id": ["OK"],
        "billing": ["OK"],
        "billing outbox": ["OK"],
        "api key": ["OK"],
    }
    assert r.stdout.splitlines()[-1] == "flowmesh: 0 FAIL, 0 WARN, 7 OK"
    assert "not there yet; the server creates it" in _line(r, "database")
    assert "resolves to fleet" in _line(r, "api key")
    assert not db_path.exists()  # the doctor only reads: it creates nothing
    # lum.id saw the dummy token and the API key; Runmesh saw one probe with the secret.
    tokens = [c.form()["token"] for c in fake_lumid.calls("/oauth/introspect")]
    assert tokens[0].startswith("lumid-doctor-")
    assert tokens[1:] == [fleet_key]
    assert [c.headers["x-bridge-secret"] for c in runmesh.calls()] == [BRIDGE_SECRET]
    _no_secret(r, BRIDGE_SECRET, fleet_key)

    # Once the server has created it (install opens it the writer's way):
    asyncio.run(_create_database(db_path))
    again = cli("doctor", "--host", "flowmesh", "--json")
    assert again.returncode == 0
    doc = json.loads(again.stdout)
    assert doc["host"] == "flowmesh"
    assert doc["ok"] is True
    assert [c["check"] for c in doc["checks"]][:4] == ["plugin", "settings", "database", "lum.id"]
    assert {c["status"] for c in doc["checks"]} == {"OK"}
    assert "(current)" in doc["checks"][2]["detail"]
    _no_secret(again, BRIDGE_SECRET, fleet_key)


def test_unreachable_lumid_fails(cli: Cli, flowmesh_env: dict[str, str], fleet_key: str) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    r = cli("doctor", "--host", "flowmesh", env={"LUM_ID_BASE_URL": url})
    assert r.returncode == 1
    line = _line(r, "lum.id")
    assert line.startswith("FAIL")
    assert f"LUM_ID_BASE_URL={url}: cannot reach it (ConnectError" in line
    assert _line(r, "api key").startswith("FAIL")
    assert "lum.id did not answer" in _line(r, "api key")
    assert r.stdout.splitlines()[-1].startswith("flowmesh: 2 FAIL")
    _no_secret(r, BRIDGE_SECRET, fleet_key)

    doc = json.loads(
        cli("doctor", "--host", "flowmesh", "--json", env={"LUM_ID_BASE_URL": url}).stdout
    )
    assert doc["ok"] is False
    failed = [c for c in doc["checks"] if c["status"] == "FAIL"]
    assert [c["env_var"] for c in failed] == ["LUM_ID_BASE_URL", "FLOWMESH_API_KEY"]


@pytest.mark.parametrize(
    ("mode", "expect"),
    [
        ("status", "answered HTTP 500, expected 200"),
        ("garbage", "a body that is not JSON"),
        ("shape", "unexpected shape"),
        ("hang", "no reply within 0.5s (LUMID_INTROSPECT_TIMEOUT_SECONDS)"),
    ],
)
def test_lumid_misbehaving_fails(
    cli: Cli, flowmesh_env: dict[str, str], fake_lumid: FakeLumId, mode: str, expect: str
) -> None:
    fake_lumid.mode = mode
    r = cli("doctor", "--host", "flowmesh", env={"LUMID_INTROSPECT_TIMEOUT_SECONDS": "0.5"})
    assert r.returncode == 1
    assert _line(r, "lum.id").startswith("FAIL")
    assert expect in _line(r, "lum.id")


async def _create_database(path: Path) -> None:
    from lumid_core.db import Database

    db = await Database.open(path)
    await db.close()


def test_unwritable_database_fails_naming_the_variable(
    cli: Cli, flowmesh_env: dict[str, str], tmp_path: Path, fleet_key: str
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    bad = blocker / "acl.sqlite"
    r = cli("doctor", "--host", "flowmesh", env={"LUMID_ACL_DB_PATH": str(bad)})
    assert r.returncode == 1
    line = _line(r, "database")
    assert line.startswith("FAIL")
    assert f"LUMID_ACL_DB_PATH={str(bad)!r}: cannot create its folder" in line
    assert _line(r, "lum.id").startswith("OK")  # the rest still ran
    assert _line(r, "api key").startswith("OK")
    assert "billing outbox" not in r.stdout
    _no_secret(r, BRIDGE_SECRET, fleet_key)


def test_newer_schema_fails(cli: Cli, flowmesh_env: dict[str, str], db_path: Path) -> None:

    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version = 999")
    r = cli("doctor", "--host", "flowmesh")
    assert r.returncode == 1
    assert "schema version 999 is newer than this lumid-core understands" in _line(r, "database")


def test_older_schema_is_read_as_it_is_and_left_alone(
    cli: Cli, flowmesh_env: dict[str, str], db_path: Path
) -> None:

    from lumid_core.db import MIGRATIONS, SCHEMA_VERSION

    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.executescript(";\n".join(MIGRATIONS[0]))
        conn.execute("PRAGMA user_version = 1")
    r = cli("doctor", "--host", "flowmesh")
    assert r.returncode == 0, r.stdout
    expected = f"writable, schema v1; the server migrates it to v{SCHEMA_VERSION} on its next"
    assert expected in _line(r, "database")
    assert "older schema" in _line(r, "billing outbox")
    # The doctor only reads: the file is left as it was, in its journal mode too.
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_bad_settings_name_each_variable(
    cli: Cli, flowmesh_env: dict[str, str], fleet_key: str
) -> None:
    r = cli(
        "doctor",
        "--host",
        "flowmesh",
        env={"LUMID_BILLING_CONCURRENCY": "0", "LUMID_INTROSPECT_TIMEOUT_SECONDS": "-1"},
    )
    assert r.returncode == 1
    settings = [line for line in r.stdout.splitlines() if line[6:].startswith("settings")]
    assert len(settings) == 2
    assert all(line.startswith("FAIL") for line in settings)
    assert "LUMID_BILLING_CONCURRENCY: " in r.stdout
    assert "LUMID_INTROSPECT_TIMEOUT_SECONDS: " in r.stdout
    # the rest still runs, each failed variable at its default
    assert _lines(r)["lum.id"] == ["OK"]
    _no_secret(r, BRIDGE_SECRET, fleet_key)

    only_host = cli(
        "doctor", "--host", "flowmesh", "--json", env={"LUMID_BILLING_CONCURRENCY": "0"}
    )
    doc = json.loads(only_host.stdout)
    by_name = {c["check"]: c for c in doc["checks"]}
    assert by_name["settings"]["env_var"] == "LUMID_BILLING_CONCURRENCY"
    assert by_name["lum.id"]["status"] == "OK"  # the shared part still checked
    assert by_name["api key"]["status"] == "OK"  # host checks run too


def test_wrong_bridge_secret_fails_without_printing_it(
    cli: Cli, flowmesh_env: dict[str, str], fleet_key: str
) -> None:
    wrong = "wrong-SECRET-00d1e5"
    r = cli("doctor", "--host", "flowmesh", env={"FLOWMESH_BRIDGE_SECRET": wrong})
    assert r.returncode == 1
    line = _line(r, "billing")
    assert line.startswith("FAIL")
    assert "rejected the bridge secret (HTTP 401); check FLOWMESH_BRIDGE_SECRET" in line
    _no_secret(r, wrong, BRIDGE_SECRET, fleet_key)
    doc = json.loads(
        cli("doctor", "--host", "flowmesh", "--json", env={"FLOWMESH_BRIDGE_SECRET": wrong}).stdout
    )
    assert {c["check"]: c["env_var"] for c in doc["checks"]}["billing"] == "FLOWMESH_BRIDGE_SECRET"


def test_runmesh_down_fails(cli: Cli, flowmesh_env: dict[str, str], runmesh: FakeRunmesh) -> None:
    runmesh.mode = "down"
    r = cli("doctor", "--host", "flowmesh")
    assert r.returncode == 1
    line = _line(r, "billing")
    assert line.startswith(f"FAIL  billing         RUNMESH_BILLING_BASE_URL={runmesh.url}: ")
    _no_secret(r, BRIDGE_SECRET)


def test_billing_half_configured_and_guard_without_billing_warn(
    cli: Cli, flowmesh_env: dict[str, str]
) -> None:
    r = cli(
        "doctor",
        "--host",
        "flowmesh",
        env={"FLOWMESH_BRIDGE_SECRET": "", "LUMID_BALANCE_GUARD": "on"},
    )
    assert r.returncode == 0, r.stdout
    assert _line(r, "billing").startswith("WARN")
    assert "FLOWMESH_BRIDGE_SECRET is empty" in _line(r, "billing")
    assert _line(r, "balance guard").startswith("WARN")
    off = cli(
        "doctor",
        "--host",
        "flowmesh",
        env={"FLOWMESH_BRIDGE_SECRET": "", "RUNMESH_BILLING_BASE_URL": ""},
    )
    assert _line(off, "billing").startswith("OK    billing         off")
    assert "balance guard" not in off.stdout  # LUMID_BALANCE_GUARD unset: off
    guarded = cli(
        "doctor",
        "--host",
        "flowmesh",
        env={
            "FLOWMESH_BRIDGE_SECRET": "",
            "RUNMESH_BILLING_BASE_URL": "",
            "LUMID_BALANCE_GUARD": "on",
        },
    )
    assert _line(guarded, "balance guard") == (
        "WARN  balance guard   LUMID_BALANCE_GUARD=on has no effect: billing is off "
        "(RUNMESH_BILLING_BASE_URL is empty)"
    )


@pytest.mark.parametrize(
    ("scopes", "revoked", "status", "expect"),
    [
        (["flowmesh:admin"], False, "OK", "resolves to fleet; its scopes pass"),
        (["flowmesh:results:write"], False, "FAIL", "node/write needs flowmesh:nodes:write"),
        (["flowmesh:read"], False, "FAIL", "result/write needs flowmesh:results:write"),
        (FLEET_SCOPES, True, "FAIL", "does not resolve at lum.id (revoked)"),
    ],
)
def test_api_key_scopes(
    cli: Cli,
    flowmesh_env: dict[str, str],
    fake_lumid: FakeLumId,
    scopes: list[str],
    revoked: bool,
    status: str,
    expect: str,
) -> None:
    key = fake_lumid.add_token("fleet", scopes=scopes)
    if revoked:
        fake_lumid.revoke(key)
    r = cli("doctor", "--host", "flowmesh", env={"FLOWMESH_API_KEY": key})
    line = _line(r, "api key")
    assert line.startswith(status)
    assert expect in line
    assert r.returncode == (0 if status == "OK" else 1)
    _no_secret(r, key)


def test_api_key_longer_than_the_plugin_accepts(cli: Cli, flowmesh_env: dict[str, str]) -> None:
    key = "lm_pat_live_" + "c" * 100
    r = cli(
        "doctor", "--host", "flowmesh", env={"FLOWMESH_API_KEY": key, "LUMID_MAX_TOKEN_BYTES": "64"}
    )
    assert r.returncode == 1
    assert "FLOWMESH_API_KEY is longer than LUMID_MAX_TOKEN_BYTES (64)" in _line(r, "api key")
    _no_secret(r, key)


def test_api_key_with_surrounding_whitespace_is_not_ok(
    cli: Cli, flowmesh_env: dict[str, str], fleet_key: str
) -> None:
    """The doctor checks the stripped key; FlowMesh resolves its system principal over
    the raw value (and workers send it as a header), so it is not simply OK."""
    r = cli("doctor", "--host", "flowmesh", env={"FLOWMESH_API_KEY": fleet_key + "\n"})
    line = _line(r, "api key")
    assert line.startswith("WARN"), r.stdout
    assert "FLOWMESH_API_KEY has leading or trailing whitespace" in line
    _no_secret(r, fleet_key)


def test_api_key_unset_warns(cli: Cli, flowmesh_env: dict[str, str]) -> None:
    r = cli("doctor", "--host", "flowmesh", env={"FLOWMESH_API_KEY": ""})
    assert r.returncode == 0
    assert _line(r, "api key").startswith("WARN  api key         FLOWMESH_API_KEY is not set")


async def test_dead_letters_warn(cli: Cli, flowmesh_env: dict[str, str], db_path: Path) -> None:
    db = await Database.open(db_path)
    try:
        await Outbox(db, "runmesh").add(
            [NewEntry(key="t1", payload={"taskId": "t1"}, reason="unknown user", dead=True)]
        )
    finally:
        await db.close()
    r = cli("doctor", "--host", "flowmesh")
    assert r.returncode == 0
    line = _line(r, "billing outbox")
    assert line.startswith("WARN")
    assert "1 dead: see `lumid billing ls --dead`" in line


# -- Lumilake -------------------------------------------------------------------------


@pytest.fixture
def optimizer() -> Iterator[FakeOptimizer]:
    with FakeOptimizer(tokens=[RUNTIME_TOKEN]) as fake:
        yield fake


def test_lumilake_with_optimizer(
    cli: Cli, cli_env: dict[str, str], fake_lumid: FakeLumId, optimizer: FakeOptimizer
) -> None:
    env = {
        "LUM_ID_BASE_URL": fake_lumid.url,
        "LUMILAKE_REMOTE_OPTIMIZER_URL": optimizer.url,
        "LUMILAKE_RUNTIME_TOKEN": RUNTIME_TOKEN,
        "LUMILAKE_REQUIRE_IDENTITY_PROVIDER": "1",
    }
    r = cli("doctor", "--host", "lumilake", env=env)
    assert r.returncode == 0, r.stdout
    assert set(_lines(r)) == {
        "plugin",
        "settings",
        "database",
        "lum.id",
        "optimizer",
        "fail closed",
    }
    assert {s for v in _lines(r).values() for s in v} == {"OK"}
    assert "offers 2 types: Remote-Greedy, remote-ilp" in _line(r, "optimizer")
    assert optimizer.catalog_calls()[0].headers["authorization"] == f"Bearer {RUNTIME_TOKEN}"
    _no_secret(r, RUNTIME_TOKEN)

    wrong = "wrong-SECRET-token-77"
    bad = cli(
        "doctor",
        "--host",
        "lumilake",
        env={**env, "LUMILAKE_RUNTIME_TOKEN": wrong, "LUMILAKE_REQUIRE_IDENTITY_PROVIDER": ""},
    )
    assert bad.returncode == 1
    line = _line(bad, "optimizer")
    assert line.startswith("FAIL")
    assert "HTTP 401 (check LUMILAKE_RUNTIME_TOKEN)" in line
    assert _line(bad, "fail closed").startswith("WARN")
    _no_secret(bad, wrong, RUNTIME_TOKEN)


def test_lumilake_optimizer_down_and_off(
    cli: Cli, cli_env: dict[str, str], fake_lumid: FakeLumId
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    r = cli(
        "doctor",
        "--host",
        "lumilake",
        env={"LUM_ID_BASE_URL": fake_lumid.url, "LUMILAKE_REMOTE_OPTIMIZER_URL": url},
    )
    assert r.returncode == 1
    assert _line(r, "optimizer").startswith(
        f"FAIL  optimizer    LUMILAKE_REMOTE_OPTIMIZER_URL={url}: catalog fetch failed"
    )
    off = cli("doctor", "--host", "lumilake", env={"LUM_ID_BASE_URL": fake_lumid.url})
    assert off.returncode == 0
    assert "remote optimizer off" in _line(off, "optimizer")


# -- the extension point ------------------------------------------------------------


def test_unknown_host_is_a_usage_error(cli: Cli) -> None:
    r = cli("doctor", "--host", "kubernetes")
    assert r.returncode == 2
    assert "invalid choice: 'kubernetes'" in r.stderr
    assert cli("doctor").returncode == 2


def _only(eps: list[EntryPoint]) -> Callable[..., EntryPoints]:
    def entry_points(**params: Any) -> EntryPoints:
        return EntryPoints(eps)

    return entry_points


def test_missing_plugin_names_the_wheel(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The plugins are installed in this workspace: hide them to see the message.
    monkeypatch.setattr("lumid_core.doctor.report.entry_points", _only([]))
    with pytest.raises(HostNotInstalledError, match="install the lumid-lumilake-plugin wheel"):
        load_host_doctor("lumilake")
    assert main(["doctor", "--host", "flowmesh"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(
        "FAIL  plugin  the flowmesh plugin is not installed here: install the "
        "lumid-flowmesh-plugin wheel (pip install lumid-flowmesh-plugin)"
    )


def test_an_entry_point_that_is_no_doctor_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = EntryPoint(name="flowmesh", value="json:dumps", group="lumid.doctor")
    monkeypatch.setattr("lumid_core.doctor.report.entry_points", _only([ep]))
    assert main(["doctor", "--host", "flowmesh", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["checks"][0]["status"] == "FAIL"
    assert "'json:dumps' in group 'lumid.doctor' is not a HostDoctor" in doc["checks"][0]["detail"]


def test_lumid_url_query_is_never_printed(
    cli: Cli, cli_env: dict[str, str], fake_lumid: FakeLumId
) -> None:
    """A key someone put in LUM_ID_BASE_URL's query string is not echoed (only
    credentials in the user:password part were hidden)."""
    env = {"LUM_ID_BASE_URL": fake_lumid.url + "/?key=query-SECRET-5e1f#frag-SECRET-9a"}
    for extra in ([], ["--json"]):
        r = cli("doctor", "--host", "lumilake", *extra, env=env)
        _no_secret(r, "query-SECRET-5e1f", "frag-SECRET-9a")


@pytest.mark.parametrize(
    ("plugins", "status"),
    [
        ("lumid-lumilake-plugin", "FAIL"),  # the wheel's name, not the module's
        ("other_plugin", "FAIL"),
        (" other_plugin , lumid_lumilake_plugin ", "OK"),
    ],
)
def test_lumilake_plugins_must_list_the_module(
    cli: Cli, cli_env: dict[str, str], fake_lumid: FakeLumId, plugins: str, status: str
) -> None:
    """Every other check passing while LUMILAKE_PLUGINS never loads this plugin would
    be an all-OK report for a server without authorization."""
    env = {
        "LUM_ID_BASE_URL": fake_lumid.url,
        "LUMILAKE_PLUGINS": plugins,
        "LUMILAKE_REQUIRE_IDENTITY_PROVIDER": "1",
    }
    r = cli("doctor", "--host", "lumilake", env=env)
    line = _line(r, "plugins")
    assert line.startswith(status), r.stdout
    assert "LUMILAKE_PLUGINS" in line
    assert r.returncode == (0 if status == "OK" else 1)


@pytest.mark.parametrize(
    ("plugins", "status"),
    [("lumid-flowmesh-plugin", "FAIL"), ("lumid_flowmesh_plugin,other", "OK")],
)
def test_flowmesh_plugins_must_list_the_module(
    cli: Cli, flowmesh_env: dict[str, str], plugins: str, status: str
) -> None:
    r = cli("doctor", "--host", "flowmesh", env={"FLOWMESH_PLUGINS": plugins})
    line = _line(r, "plugins")
    assert line.startswith(status), r.stdout
    assert "FLOWMESH_PLUGINS" in line
    assert r.returncode == (0 if status == "OK" else 1)


# -- URL settings (issues 15 and 16) -------------------------------------------------


def test_a_bad_runmesh_port_is_named_and_the_other_checks_still_run(
    cli: Cli, flowmesh_env: dict[str, str], fleet_key: str
) -> None:
    r = cli(
        "doctor", "--host", "flowmesh", env={"RUNMESH_BILLING_BASE_URL": "http://127.0.0.1:abc"}
    )
    assert r.returncode == 1
    assert "Traceback" not in r.stdout + r.stderr
    assert "crashed" not in r.stdout
    lines = _lines(r)
    assert lines["settings"] == ["FAIL"]
    assert "RUNMESH_BILLING_BASE_URL: has an invalid port" in _line(r, "settings")
    for name in ("database", "lum.id", "billing outbox", "api key"):
        assert lines[name] == ["OK"], r.stdout
    assert "billing" not in lines  # the check that would use the bad URL is left out
    _no_secret(r, BRIDGE_SECRET, fleet_key)


def test_a_bad_lum_id_url_is_named_without_a_traceback(
    cli: Cli, flowmesh_env: dict[str, str], fleet_key: str
) -> None:
    r = cli("doctor", "--host", "flowmesh", "--json", env={"LUM_ID_BASE_URL": "http://lum.id:abc"})
    assert r.returncode == 1
    assert "Traceback" not in r.stdout + r.stderr
    doc = json.loads(r.stdout)
    by_name = {c["check"]: c for c in doc["checks"]}
    assert by_name["settings"]["env_var"] == "LUM_ID_BASE_URL"
    assert "lum.id" not in by_name  # never sent to the default (the real lum.id)
    assert by_name["database"]["status"] == "OK"


def test_clear_text_http_fails_and_the_opt_out_warns(
    cli: Cli, flowmesh_env: dict[str, str], fake_lumid: FakeLumId, runmesh: FakeRunmesh
) -> None:
    # 127.0.0.2 is not one of the loopback names the rule (Lumilake's) accepts, yet
    # nothing listens there: the probe the opt-out allows never leaves the machine.
    env = {"RUNMESH_BILLING_BASE_URL": "http://127.0.0.2:9/api"}
    refused = cli("doctor", "--host", "flowmesh", env=env)
    assert refused.returncode == 1
    line = _line(refused, "settings")
    assert line.startswith("FAIL")
    assert "RUNMESH_BILLING_BASE_URL: sends a credential in clear text" in line
    assert "billing" not in _lines(refused)  # nothing sent to it
    allowed = cli("doctor", "--host", "flowmesh", env={**env, "LUMID_ALLOW_INSECURE_HTTP": "1"})
    warn = [ln for ln in allowed.stdout.splitlines() if ln.startswith("WARN  settings")]
    assert len(warn) == 1, allowed.stdout
    assert "RUNMESH_BILLING_BASE_URL is http:// to a non-loopback host" in warn[0]
    assert "LUMID_ALLOW_INSECURE_HTTP=1" in warn[0]


def test_a_bad_optimizer_url_is_named_and_not_reported_as_off(
    cli: Cli, fake_lumid: FakeLumId
) -> None:
    env = {"LUM_ID_BASE_URL": fake_lumid.url, "LUMILAKE_REMOTE_OPTIMIZER_URL": "https://o.io:abc"}
    r = cli("doctor", "--host", "lumilake", env=env)
    assert r.returncode == 1
    assert "Traceback" not in r.stdout + r.stderr
    assert "LUMILAKE_REMOTE_OPTIMIZER_URL: has an invalid port" in _line(r, "settings")
    assert "optimizer" not in _lines(r)  # not "off": it is set, and wrong
    assert _lines(r)["lum.id"] == ["OK"]

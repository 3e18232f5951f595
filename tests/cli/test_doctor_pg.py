"""`lumid doctor` on the PostgreSQL store: connection, schema version, permissions."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from subprocess import CompletedProcess

import asyncpg
import pytest

from lumid_core.pg import PgDatabase
from lumid_fakes import FakeLumId, PgCluster

type Cli = Callable[..., CompletedProcess[str]]


def _database(r: CompletedProcess[str]) -> dict[str, str]:
    doc = json.loads(r.stdout)
    (check,) = [c for c in doc["checks"] if c["check"] == "database"]
    assert check["env_var"] == "LUMID_DATABASE_URL"
    return check  # type: ignore[no-any-return]


@pytest.fixture
def doctor(cli: Cli, fake_lumid: FakeLumId) -> Callable[[str], CompletedProcess[str]]:
    def run(url: str) -> CompletedProcess[str]:
        return cli(
            "doctor",
            "--host",
            "lumilake",
            "--json",
            env={"LUM_ID_BASE_URL": fake_lumid.url, "LUMID_DATABASE_URL": url},
        )

    return run


def test_a_good_database_is_ok_with_its_schema_version(
    doctor: Callable[[str], CompletedProcess[str]], pg_url: str, pg_cluster: PgCluster
) -> None:
    r = doctor(pg_url)
    check = _database(r)
    assert check["status"] == "OK", check
    assert "schema v1" in check["detail"]
    assert "may read and write every table" in check["detail"]
    assert pg_cluster.password not in r.stdout + r.stderr


def test_a_wrong_password_fails_without_echoing_it(
    doctor: Callable[[str], CompletedProcess[str]], pg_cluster: PgCluster
) -> None:
    wrong = "nope-" + secrets.token_hex(8)
    r = doctor(pg_cluster.url(password=wrong))
    assert r.returncode == 1
    check = _database(r)
    assert check["status"] == "FAIL"
    assert check["detail"].startswith("LUMID_DATABASE_URL=postgresql://***@127.0.0.1:")
    assert "authentication failed" in check["detail"]
    assert wrong not in r.stdout + r.stderr


def test_an_unreachable_host_fails_naming_the_variable(
    doctor: Callable[[str], CompletedProcess[str]], pg_cluster: PgCluster
) -> None:
    r = doctor(pg_cluster.url().replace(f":{pg_cluster.port}/", ":1/"))
    check = _database(r)
    assert check["status"] == "FAIL"
    assert "LUMID_DATABASE_URL" in check["detail"]
    assert "cannot connect" in check["detail"]
    assert pg_cluster.password not in r.stdout + r.stderr


async def test_a_read_only_role_fails_naming_what_it_lacks(
    doctor: Callable[[str], CompletedProcess[str]], pg_url: str, pg_cluster: PgCluster
) -> None:
    db = await PgDatabase.open(pg_url, pool_size=1)  # the schema exists, made by its owner
    await db.close()
    name = pg_url.rsplit("/", 1)[1]
    role, password = f"ro_{secrets.token_hex(4)}", secrets.token_hex(12)
    conn = await asyncpg.connect(pg_url)
    await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    await conn.execute(f'GRANT CONNECT ON DATABASE "{name}" TO {role}')
    await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    await conn.close()
    r = doctor(pg_cluster.url(name, user=role, password=password))
    check = _database(r)
    assert check["status"] == "FAIL", check
    assert f"role '{role}' lacks INSERT on lumid_grants" in check["detail"]
    assert password not in r.stdout + r.stderr
    # On an empty database the same role cannot create the schema: said plainly too.
    fresh = pg_cluster.create_database()
    pg_cluster.psql(f'GRANT CONNECT ON DATABASE "{fresh}" TO {role}')
    r = doctor(pg_cluster.url(fresh, user=role, password=password))
    check = _database(r)
    assert check["status"] == "FAIL"
    assert "cannot prepare the schema: permission denied" in check["detail"]


async def test_flowmesh_reads_the_shared_billing_outbox(
    cli: Cli, fake_lumid: FakeLumId, pg_url: str
) -> None:
    from lumid_core.outbox import NewEntry
    from lumid_core.pg import PgOutbox

    db = await PgDatabase.open(pg_url, pool_size=1)
    await PgOutbox(db, "runmesh").add([NewEntry("t1", {}), NewEntry("t2", {}, dead=True)])
    await db.close()
    r = cli(
        "doctor",
        "--host",
        "flowmesh",
        "--json",
        env={"LUM_ID_BASE_URL": fake_lumid.url, "LUMID_DATABASE_URL": pg_url},
    )
    doc = json.loads(r.stdout)
    (outbox,) = [c for c in doc["checks"] if c["check"] == "billing outbox"]
    assert outbox["status"] == "WARN"
    assert outbox["detail"].startswith("1 pending, 0 held (no email yet), 0 delivered, 1 dead")
    assert _database(r)["status"] == "OK"

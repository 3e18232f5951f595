"""`lumid db copy` from a populated SQLite file, and `lumid billing` on the shared outbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from lumid_core import Database, SqliteGrantStore
from lumid_core.directory import SqlitePrincipalDirectory
from lumid_core.outbox import Dead, Delivered, NewEntry, Outbox
from lumid_core.pg import PgDatabase, PgGrantStore, PgOutbox, PgParentLinks, PgPrincipalDirectory
from lumid_core.store.base import Grant, Level
from lumid_core.store.parents import SqliteParentLinks
from lumid_fakes import PgCluster
from lumid_fakes.legacy_db import iso, write_legacy_db

type Cli = Callable[..., CompletedProcess[str]]


async def _populate(path: Path) -> None:
    db = await Database.open(path)
    try:
        grants = SqliteGrantStore(db)
        await grants.grant("workflow", "w1", "alice", Level.WRITE)
        await grants.grant("workflow", "w1", "bob", Level.READ)
        await grants.import_grants(
            [Grant("job", f"j{i}", "carol", Level.READ, 100.0 + i, 200.0 + i) for i in range(500)]
        )
        await SqlitePrincipalDirectory(db).record("alice", "alice@example.com")
        await SqliteParentLinks(db).link("task", "t1", "workflow", "w1")
        box = Outbox(db, "runmesh")
        await box.add([NewEntry("t1", {"cost": "1"}), NewEntry("t2", {"cost": "2"})])
        await box.add([NewEntry("t3", {}, hold_on="dave"), NewEntry("t4", {}, dead=True)])
        await box.mark("t2", Delivered())
    finally:
        await db.close()


def _counts(r: CompletedProcess[str]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for line in r.stdout.splitlines()[1:]:
        table, read, _, new, _ = line.split()
        out[table] = (int(read), int(new))
    return out


async def test_copy_moves_everything_idempotently_and_billing_reads_it(
    cli: Cli, db_path: Path, pg_url: str, pg_cluster: PgCluster
) -> None:
    await _populate(db_path)
    env = {"LUMID_DATABASE_URL": pg_url}
    r = cli("db", "copy", env=env)
    assert r.returncode == 0, r.stderr
    assert pg_cluster.password not in r.stdout + r.stderr
    assert r.stdout.splitlines()[0].startswith(f"copied {db_path} -> postgresql://***@127.0.0.1")
    assert _counts(r) == {
        "grants": (502, 502),
        "principals": (1, 1),
        "resource_parents": (1, 1),
        "outbox": (4, 4),
    }
    again = cli("db", "copy", env=env)
    assert again.returncode == 0, again.stderr
    assert {t: n for t, (_, n) in _counts(again).items()} == {
        "grants": 0,
        "principals": 0,
        "resource_parents": 0,
        "outbox": 0,
    }

    db = await PgDatabase.open(pg_url, pool_size=2)
    try:
        grants = PgGrantStore(db)
        assert await grants.level("workflow", "w1", "alice") is Level.WRITE
        assert await grants.level("workflow", "w1", "bob") is Level.READ
        (j7,) = [g async for g in grants.iter_grants(kind="job", id="j7")]
        assert (j7.granted_at, j7.last_seen_at) == (107.0, 207.0)
        assert await PgPrincipalDirectory(db).email_for("alice") == "alice@example.com"
        assert await PgParentLinks(db).parent("task", "t1", "workflow") == "w1"
        box = PgOutbox(db, "runmesh")
        states = {e.key: (e.state, e.hold_on) for e in await box.entries()}
        assert states == {
            "t1": ("pending", None),
            "t2": ("delivered", None),
            "t3": ("held", "dave"),
            "t4": ("dead", None),
        }
        assert (await box.entry("t1")).payload == {"cost": "1"}  # type: ignore[union-attr]
        # A row PostgreSQL has moved on with is never rolled back by a later copy.
        await box.mark("t1", Dead("gone"))
    finally:
        await db.close()
    cli("db", "copy", env=env)

    # `lumid billing` reads the shared outbox when LUMID_DATABASE_URL is set.
    status = cli("billing", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["runmesh"] | {"oldest_pending_age_seconds": None} == {
        "pending": 0,
        "held": 1,
        "delivered": 1,
        "dead": 2,
        "oldest_pending_age_seconds": None,
    }
    dead = cli("billing", "ls", "--dead", "--json", env=env)
    assert sorted(json.loads(line)["key"] for line in dead.stdout.splitlines()) == ["t1", "t4"]
    retried = cli("billing", "retry", "--all-dead", env=env)
    assert retried.returncode == 0, retried.stderr
    assert "2 dead letters queued" in retried.stdout
    assert pg_cluster.password not in status.stdout + dead.stdout + retried.stdout


def test_copy_refuses_what_is_not_postgresql_and_a_missing_file(
    cli: Cli, db_path: Path, tmp_path: Path
) -> None:
    r = cli("db", "copy", "--to", "mysql://u:secret-pw@h/db")
    assert r.returncode == 1
    assert "must be a postgresql:// URL" in r.stderr
    assert "secret-pw" not in r.stderr
    r = cli("db", "copy", env={"LUMID_DATABASE_URL": "postgresql://u:p@127.0.0.1:1/x"})
    assert r.returncode == 1
    assert "no database there" in r.stderr


@pytest.mark.usefixtures("pg_cluster")
async def test_copy_to_an_unreachable_server_names_the_option(
    cli: Cli, db_path: Path, pg_cluster: PgCluster
) -> None:
    await _populate(db_path)
    url = pg_cluster.url().replace(f":{pg_cluster.port}/", ":1/")
    r = cli("db", "copy", "--to", url)
    assert r.returncode == 1
    assert r.stderr.startswith("lumid: error: --to=postgresql://***@127.0.0.1:1/")
    assert pg_cluster.password not in r.stderr


async def test_a_lumid_plugins_0_2_file_is_migrated_then_copied(
    cli: Cli, db_path: Path, pg_url: str
) -> None:
    t0 = 1_700_000_000.0
    write_legacy_db(
        db_path,
        [
            ("workflow", "w1", "alice", 2, iso(t0), iso(t0 + 10)),
            ("job", "j1", "bob", 1, iso(t0 + 1), iso(t0 + 11)),
        ],
        layout="0.2.1",
    )
    r = cli("db", "copy", env={"LUMID_DATABASE_URL": pg_url})
    assert r.returncode == 0, r.stderr
    assert "migrated 2 grants from the lumid-plugins" in r.stderr
    assert _counts(r)["grants"] == (2, 2)
    db = await PgDatabase.open(pg_url, pool_size=1)
    try:
        grants = PgGrantStore(db)
        assert await grants.level("workflow", "w1", "alice") is Level.WRITE
        assert await grants.level("job", "j1", "bob") is Level.READ
    finally:
        await db.close()

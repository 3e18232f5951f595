"""`lumid billing` as a subprocess, on an outbox a server-side process fills."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from lumid_core import Database
from lumid_core.outbox import NewEntry, Outbox

type Cli = Callable[..., CompletedProcess[str]]

SINK = "runmesh"


async def _fill(db_path: Path) -> None:
    db = await Database.open(db_path)
    try:
        outbox = Outbox(db, SINK)
        await outbox.add(
            [
                NewEntry(key="t-pending", payload={"taskId": "t-pending", "cost": "1.50"}),
                NewEntry(key="t-held", payload={"taskId": "t-held"}, hold_on="carol"),
                NewEntry(
                    key="t-dead-1",
                    payload={"taskId": "t-dead-1"},
                    reason="Runmesh code 500: unknown user",
                    dead=True,
                ),
                NewEntry(
                    key="t-dead-2",
                    payload={"taskId": "t-dead-2"},
                    reason="Runmesh rejected the bridge secret (HTTP 401)",
                    dead=True,
                ),
            ],
            now=1_000.0,
        )
        await Outbox(db, "other-sink").add([NewEntry(key="x", payload={"n": 1})])
    finally:
        await db.close()


async def _states(db_path: Path) -> dict[str, str]:
    db = await Database.open(db_path)
    try:
        return {e.key: e.state for e in await Outbox(db, SINK).entries(limit=100)}
    finally:
        await db.close()


async def test_status_counts_every_sink(cli: Cli, db_path: Path) -> None:
    await _fill(db_path)
    r = cli("billing", "status")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert rows[0] == ["SINK", "PENDING", "HELD", "DELIVERED", "DEAD", "OLDEST", "PENDING"]
    assert rows[1][0] == "other-sink"
    assert rows[2][:5] == ["runmesh", "1", "1", "0", "2"]
    assert rows[2][5].endswith("d")  # queued at t=1000: days ago

    doc = json.loads(cli("billing", "status", "--json", "--sink", SINK).stdout)
    assert set(doc) == {SINK}
    assert doc[SINK]["pending"] == 1
    assert doc[SINK]["held"] == 1
    assert doc[SINK]["dead"] == 2
    assert doc[SINK]["delivered"] == 0
    assert doc[SINK]["oldest_pending_age_seconds"] > 1_000_000


async def test_status_of_an_empty_outbox(cli: Cli, db_path: Path) -> None:
    db = await Database.open(db_path)
    await db.close()
    r = cli("billing", "status")
    assert r.returncode == 0
    assert "the outbox is empty" in r.stdout


async def test_ls_dead_shows_reasons(cli: Cli, db_path: Path) -> None:
    await _fill(db_path)
    r = cli("billing", "ls", "--dead")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["SINK", "KEY", "STATE", "ATTEMPTS", "QUEUED", "AGE", "REASON"]
    assert [line.split()[1] for line in lines[1:]] == ["t-dead-1", "t-dead-2"]
    assert "Runmesh code 500: unknown user" in lines[1]
    as_json = [
        json.loads(line)
        for line in cli("billing", "ls", "--state", "held", "--json").stdout.splitlines()
    ]
    assert [(e["key"], e["hold_on"], e["payload"]) for e in as_json] == [
        ("t-held", "carol", {"taskId": "t-held"})
    ]
    limited = cli("billing", "ls", "--limit", "1", "--sink", SINK)
    assert len(limited.stdout.splitlines()) == 2


async def test_retry_one_then_all(cli: Cli, db_path: Path) -> None:
    await _fill(db_path)
    r = cli("billing", "retry", "--task", "t-dead-1")
    assert r.returncode == 0, r.stderr
    assert "t-dead-1 queued for delivery again" in r.stdout
    states = await _states(db_path)
    assert states["t-dead-1"] == "pending"
    assert states["t-dead-2"] == "dead"

    not_dead = cli("billing", "retry", "--task", "t-held")
    assert not_dead.returncode == 1
    assert "'t-held' is not a dead letter (runmesh: held)" in not_dead.stderr
    unknown = cli("billing", "retry", "--task", "nope")
    assert unknown.returncode == 1
    assert "no outbox row has the key 'nope'" in unknown.stderr

    everything = cli("billing", "retry", "--all-dead")
    assert everything.returncode == 0
    assert "1 dead letters queued for delivery again" in everything.stdout
    assert set((await _states(db_path)).values()) == {"pending", "held"}
    assert "no dead letters" in cli("billing", "retry", "--all-dead").stdout


def test_billing_on_a_missing_database(cli: Cli, db_path: Path) -> None:
    r = cli("billing", "status")
    assert r.returncode == 1
    assert f"LUMID_ACL_DB_PATH={str(db_path)!r}: no database there" in r.stderr
    assert not db_path.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["billing"],
        ["billing", "retry"],
        ["billing", "retry", "--task", "t", "--all-dead"],
        ["billing", "ls", "--dead", "--state", "held"],
        ["billing", "ls", "--state", "lost"],
        ["billing", "ls", "--limit", "0"],
        ["billing", "status", "--verbose"],
    ],
)
def test_bad_arguments_are_usage_errors(cli: Cli, args: list[str]) -> None:
    r = cli(*args)
    assert r.returncode == 2
    assert "usage: lumid" in r.stderr

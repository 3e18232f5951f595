"""`lumid acl` on the shared PostgreSQL store: a running replica sees it on its next check."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from subprocess import CompletedProcess

import pytest

from lumid_core.pg import PgDatabase, PgGrantStore, PgPrincipalDirectory
from lumid_core.store.base import Level
from lumid_fakes import PgCluster

type Cli = Callable[..., CompletedProcess[str]]


@pytest.fixture
async def replica(pg_url: str) -> AsyncIterator[PgDatabase]:
    db = await PgDatabase.open(pg_url, pool_size=2)
    yield db
    await db.close()


async def test_grant_ls_revoke_export_import_through_the_shared_store(
    cli: Cli, pg_url: str, replica: PgDatabase, pg_cluster: PgCluster
) -> None:
    env = {"LUMID_DATABASE_URL": pg_url}
    store = PgGrantStore(replica)
    await PgPrincipalDirectory(replica).record("alice-sub", "Alice@Example.com")
    r = cli(
        "acl", "grant", "--kind", "job", "--id", "j1", "--email", "alice@example.com",
        "--level", "write", env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert await store.level("job", "j1", "alice-sub") is Level.WRITE  # the replica's next check
    r = cli("acl", "ls", env=env)
    assert r.returncode == 0, r.stderr
    assert "alice-sub" in r.stdout
    exported = cli("acl", "export", env=env)
    (line,) = exported.stdout.splitlines()
    assert json.loads(line)["principal_id"] == "alice-sub"
    r = cli("acl", "revoke", "--kind", "job", "--id", "j1", "--principal", "alice-sub", env=env)
    assert r.returncode == 0, r.stderr
    assert await store.level("job", "j1", "alice-sub") is None
    r = cli("acl", "import", stdin=exported.stdout, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("imported 1 grants from <stdin> into postgresql://***@127.0.0.1")
    assert await store.level("job", "j1", "alice-sub") is Level.WRITE
    assert pg_cluster.password not in r.stdout + r.stderr

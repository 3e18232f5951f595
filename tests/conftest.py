"""Fixtures shared by every test: loopback emulators and fresh databases."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lumid_core import LumidSettings, load_settings
from lumid_core.runtime import CoreRuntime, open_runtime
from lumid_fakes import FakeLumId, FakeRunmesh, PgCluster, find_pg_bin
from lumid_fakes.postgres import INSTALL_HINT


@pytest.fixture
def logger() -> logging.Logger:
    return logging.getLogger("tests")


@pytest.fixture
def fake_lumid() -> Iterator[FakeLumId]:
    with FakeLumId() as fake:
        yield fake


@pytest.fixture
def fake_runmesh() -> Iterator[FakeRunmesh]:
    with FakeRunmesh() as fake:
        yield fake


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "plugin-data" / "lumid_acl.sqlite"


@pytest.fixture
def core_env(
    monkeypatch: pytest.MonkeyPatch, fake_lumid: FakeLumId, db_path: Path
) -> dict[str, str]:
    """Point the plugins' environment at the fake lum.id and a fresh database."""
    env = {"LUM_ID_BASE_URL": fake_lumid.url, "LUMID_ACL_DB_PATH": str(db_path)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
async def runtime(core_env: dict[str, str], logger: logging.Logger) -> AsyncIterator[CoreRuntime]:
    settings = load_settings(LumidSettings)
    async with open_runtime(settings, plugin="tests", logger=logger) as rt:
        yield rt


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the whole session.

    Missing binaries skip the test with what to install, except under CI=true, where
    they fail it (CI installs PostgreSQL: .ci/run).
    """
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if os.environ.get("CI") == "true":
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    with PgCluster(bin_dir) as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """The admin URL of a fresh, empty database of the session cluster."""
    return pg_cluster.url(pg_cluster.create_database())

"""Fixtures shared by every test: loopback emulators and fresh databases."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lumid_core import LumidSettings, load_settings
from lumid_core.runtime import CoreRuntime, open_runtime
from lumid_fakes import FakeLumId, FakeRunmesh


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

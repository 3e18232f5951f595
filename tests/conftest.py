"""Fixtures shared by every test: loopback emulators and fresh databases."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException
from lumid_hooks import PrincipalContext, ResourceRef

from lumid_core import LumidSettings, load_settings
from lumid_core.runtime import CoreRuntime, open_runtime
from lumid_fakes import FakeLumId, FakeRunmesh, PgCluster, find_pg_bin
from lumid_fakes.postgres import INSTALL_HINT

TESTS_ROOT = Path(__file__).resolve().parent


def _runs_whole_suite(config: pytest.Config) -> bool:
    """True when pytest was asked for every test (no args, or just the tests folder)."""
    if config.args_source is pytest.Config.ArgsSource.TESTPATHS:
        return True
    targets = {Path(config.invocation_params.dir, a).resolve() for a in config.args}
    return bool(targets) and targets <= {TESTS_ROOT, TESTS_ROOT.parent}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a whole-suite run, fail when a top-level test folder collects nothing.

    pytest silently skips folders (e.g. any called `dist`, by `norecursedirs`): a
    folder of tests that never run must fail the run, not pass it. Counted before
    `-m` / `-k` deselect anything, so `-m "not dist"` is still a whole-suite run.
    """
    if not _runs_whole_suite(config):
        return
    folders = {p.name for p in TESTS_ROOT.iterdir() if p.is_dir() and any(p.rglob("test_*.py"))}
    counts = dict.fromkeys(folders, 0)
    for item in items:
        try:
            top = item.path.resolve().relative_to(TESTS_ROOT).parts[0]
        except ValueError:
            continue
        if top in counts:
            counts[top] += 1
    empty = sorted(name for name, n in counts.items() if n == 0)
    if empty:
        raise pytest.UsageError(
            "these test folders collected no tests (a skipped folder name? see "
            f"norecursedirs): {', '.join('tests/' + n for n in empty)}"
        )


@pytest.fixture
def logger() -> logging.Logger:
    return logging.getLogger("tests")


Allowed = Callable[[Any, PrincipalContext, str, str | None, str], Awaitable[bool]]
"""`await allowed(checker, who, kind, id, action)`, the `allowed` fixture."""


@pytest.fixture
def allowed() -> Allowed:
    """A verdict of a checker's (or engine's) `require`: True, or False on its 403.

    Any other outcome (another status, another exception) fails the test.
    """

    async def verdict(
        checker: Any, who: PrincipalContext, kind: str, rid: str | None, action: str
    ) -> bool:
        ref = ResourceRef(kind=kind, id=rid)
        try:
            await checker.require(who, ref, action, logging.getLogger("tests"))
        except HTTPException as exc:
            status = exc.status_code
        else:
            return True
        assert status == 403, f"require answered {status}, not a verdict"
        return False

    return verdict


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

"""install() under each shape Lumilake's loader accepts, its gates and its teardown."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path

import lumid_hooks
import lumilake_hook
import pytest
from fastapi import HTTPException
from lumid_hooks import PrincipalContext, ResourceRef

import lumid_lumilake_plugin
from lumid_core import SettingsError
from lumid_fakes import FakeLumId, FakeOptimizer
from lumid_lumilake_plugin import LumilakeInstall

type Loader = Callable[[AsyncExitStack], Awaitable[lumid_hooks.HookBindings]]

PLUGIN = "lumid_lumilake_plugin"


def _names(bindings: lumid_hooks.HookBindings) -> list[str]:
    return [
        *(h.name for h in bindings.identity_providers),
        *(h.name for h in bindings.permission_checkers),
        *(h.name for h in bindings.resource_registrars),
    ]


async def _drive_every_hook(
    bindings: lumilake_hook.BaseBindings, fake_lumid: FakeLumId, log: logging.Logger
) -> None:
    """Identity -> registrar -> permission checks, through the bindings only."""
    token = fake_lumid.add_token("alice", scopes=["lumilake:jobs:submit"], email="a@x.io")
    (identity,) = bindings.identity_providers
    (checker,) = bindings.permission_checkers
    (registrar,) = bindings.resource_registrars
    assert await identity.resolve("", log) is None
    alice = await identity.resolve(token, log)
    assert alice is not None
    assert alice.principal_id == "alice"
    bob = PrincipalContext(
        principal_id="bob",
        org_id="lumid",
        external_id="bob",
        principal_type="user",
        scopes=["lumilake:jobs:submit"],
    )
    await checker.require(alice, ResourceRef(kind="job"), "write", log)
    await registrar.register(alice, ResourceRef(kind="job", id="job-1"), log)
    await checker.require(alice, ResourceRef(kind="job", id="job-1"), "read", log)
    with pytest.raises(HTTPException) as denied:
        await checker.require(bob, ResourceRef(kind="job", id="job-1"), "read", log)
    assert denied.value.status_code == 403
    assert await checker.accessible_ids(alice, "job", "read", log) == frozenset({"job-1"})
    await registrar.reconcile([ResourceRef(kind="job", id="job-1")], log)


def test_install_opens_nothing(
    lumilake_env: dict[str, str], db_path: Path, fake_lumid: FakeLumId
) -> None:
    first = lumid_lumilake_plugin.install()
    second = lumid_lumilake_plugin.install()
    assert isinstance(first, LumilakeInstall)
    assert first is not second
    assert not db_path.exists()
    assert not db_path.parent.exists()
    assert fake_lumid.calls() == []


async def test_server_shape_enters_on_exit_stack_and_tears_down(
    lumilake_env: dict[str, str],
    fake_lumid: FakeLumId,
    load: Loader,
    logger: logging.Logger,
    db_path: Path,
) -> None:
    installed = lumid_lumilake_plugin.install()
    assert isinstance(installed, AbstractAsyncContextManager)
    async with AsyncExitStack() as stack:
        bindings = await load(stack)
        assert type(bindings) is lumilake_hook.BaseBindings
        assert isinstance(bindings, lumid_hooks.HookBindings)
        assert isinstance(bindings, lumilake_hook.HookBindings)
        assert _names(bindings) == [
            f"{PLUGIN}.identity",
            f"{PLUGIN}.permissions",
            f"{PLUGIN}.registrar",
        ]
        assert bindings.optimizer_providers == ()
        assert bindings.submission_guards == ()
        assert bindings.usage_sinks == ()
        assert db_path.exists()
        await _drive_every_hook(bindings, fake_lumid, logger)
        (registrar,) = bindings.resource_registrars
        principal = await bindings.identity_providers[0].resolve(
            next(iter(fake_lumid.tokens)), logger
        )
        assert principal is not None
    # Teardown closed the database: the registrar can no longer write (a 503, issue 16).
    with pytest.raises(HTTPException) as closed:
        await registrar.register(principal, ResourceRef(kind="job", id="job-2"), logger)
    assert closed.value.status_code == 503


async def test_awaited_shape_opens_and_aclose_closes(
    lumilake_env: dict[str, str], fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    installed = lumid_lumilake_plugin.install()
    bindings = await installed
    assert isinstance(bindings, lumilake_hook.BaseBindings)
    assert isinstance(bindings, lumilake_hook.HookBindings)
    await _drive_every_hook(bindings, fake_lumid, logger)
    await installed.aclose()
    await installed.aclose()  # idempotent
    (registrar,) = bindings.resource_registrars
    alice = PrincipalContext(
        principal_id="alice", org_id="o", external_id="a", principal_type="user", scopes=[]
    )
    with pytest.raises(HTTPException) as closed:  # a store that is gone: 503 (issue 16)
        await registrar.register(alice, ResourceRef(kind="job", id="job-9"), logger)
    assert closed.value.status_code == 503


async def test_entering_twice_is_refused(lumilake_env: dict[str, str]) -> None:
    installed = lumid_lumilake_plugin.install()
    async with installed:
        with pytest.raises(RuntimeError, match="entered twice"):
            await installed.__aenter__()


async def test_plain_shape_fails_closed(
    lumilake_env: dict[str, str], db_path: Path, logger: logging.Logger, fake_lumid: FakeLumId
) -> None:
    """A loader that never enters the object (Lumilake's job subprocess) gets
    stand-ins that deny, never an open server."""
    plain = lumid_lumilake_plugin.install()
    assert isinstance(plain, lumid_hooks.HookBindings)
    assert isinstance(plain, lumilake_hook.HookBindings)
    assert plain.optimizer_providers == ()
    token = fake_lumid.add_token("alice", scopes=["*"])
    (identity,) = plain.identity_providers
    (checker,) = plain.permission_checkers
    (registrar,) = plain.resource_registrars
    assert await identity.resolve("", logger) is None
    with pytest.raises(HTTPException) as unavailable:
        await identity.resolve(token, logger)
    assert unavailable.value.status_code == 503
    assert "entered" in str(unavailable.value.detail)
    admin = PrincipalContext(
        principal_id="root", org_id="o", external_id="r", principal_type="admin", scopes=["*"]
    )
    with pytest.raises(HTTPException):
        await checker.require(admin, ResourceRef(kind="job"), "write", logger)
    assert await checker.accessible_ids(admin, "job", "read", logger) == frozenset()
    with pytest.raises(HTTPException):
        await registrar.register(admin, ResourceRef(kind="job", id="j"), logger)
    await registrar.reconcile([], logger)
    assert not db_path.exists()
    assert fake_lumid.calls() == []


async def test_unwritable_acl_path_fails_install_naming_the_variable(
    lumilake_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, load: Loader
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("LUMID_ACL_DB_PATH", str(blocker / "acl.sqlite"))
    async with AsyncExitStack() as stack:
        with pytest.raises(RuntimeError, match="LUMID_ACL_DB_PATH"):
            await load(stack)


async def test_missing_parent_directories_are_created(
    lumilake_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, load: Loader
) -> None:
    path = tmp_path / "a" / "b" / "c" / "acl.sqlite"
    monkeypatch.setenv("LUMID_ACL_DB_PATH", str(path))
    async with AsyncExitStack() as stack:
        await load(stack)
        assert path.exists()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("http://optimizer.example.com", "https"),
        ("ftp://127.0.0.1", "https"),
        ("https://user:hunter2@optimizer.example.com", "credentials"),
        ("https://optimizer.example.com/?x=1", "query"),
    ],
)
def test_bad_remote_url_fails_install_naming_the_variable(
    lumilake_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    monkeypatch.setenv("LUMILAKE_REMOTE_OPTIMIZER_URL", value)
    with pytest.raises(SettingsError, match="LUMILAKE_REMOTE_OPTIMIZER_URL") as err:
        lumid_lumilake_plugin.install()
    assert reason in str(err.value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("http://127.0.0.1:99999", "port"),
        ("https://optimizer.example.com:abc", "port"),
        ("https://optimizer.example.com:0", "port"),
        ("https://", "host"),
        ("https:///api", "host"),
        ("https://optimizer example.com", "whitespace"),
    ],
)
async def test_unusable_remote_url_fails_install_not_entering(
    lumilake_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    load: Loader,
    value: str,
    reason: str,
) -> None:
    """A URL httpx cannot use must fail install() naming the variable: were it found
    only when the catalog is fetched on entering, a non-HTTP error (InvalidURL, ...)
    escaped and Lumilake skipped the whole plugin (identity and authorization)."""
    monkeypatch.setenv("LUMILAKE_REMOTE_OPTIMIZER_URL", value)
    with pytest.raises(SettingsError, match="LUMILAKE_REMOTE_OPTIMIZER_URL") as err:
        async with AsyncExitStack() as stack:
            await load(stack)
    assert reason in str(err.value)


@pytest.mark.parametrize(
    "value", ["https://optimizer.example.com/", "http://127.0.0.1:9", "http://localhost:1/x"]
)
def test_good_remote_urls_are_accepted(
    lumilake_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("LUMILAKE_REMOTE_OPTIMIZER_URL", value)
    installed = lumid_lumilake_plugin.install()
    assert installed.settings.lumilake_remote_optimizer_url == value.rstrip("/")


async def test_install_logs_one_info_line_without_secrets(
    optimizer_env: dict[str, str],
    fake_optimizer: FakeOptimizer,
    fake_lumid: FakeLumId,
    load: Loader,
    service_token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger=PLUGIN):
        async with AsyncExitStack() as stack:
            await load(stack)
    infos = [r for r in caplog.records if r.name == PLUGIN and r.levelno == logging.INFO]
    installed_lines = [r.getMessage() for r in infos if "installed" in r.getMessage()]
    assert len(installed_lines) == 1
    line = installed_lines[0]
    assert "identity on" in line
    assert "permissions on" in line
    assert "registrar on" in line
    assert "remote optimizer on" in line
    assert "Remote-Greedy" in line
    assert all(service_token not in r.getMessage() for r in caplog.records)
    assert len(fake_optimizer.catalog_calls()) == 1


async def test_optimizer_off_is_said_in_the_install_line(
    lumilake_env: dict[str, str], load: Loader, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=PLUGIN):
        async with AsyncExitStack() as stack:
            await load(stack)
    assert any(
        "remote optimizer off (LUMILAKE_REMOTE_OPTIMIZER_URL is not set)" in r.getMessage()
        for r in caplog.records
    )


async def test_lumilake_skips_a_failing_plugin_with_the_cause_in_the_log(
    lumilake_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    load: Loader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Lumilake logs `install()` failures with their traceback and skips the plugin:
    the cause must be in the exception itself."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("LUMID_ACL_DB_PATH", str(blocker / "x.sqlite"))
    host = logging.getLogger("tests.lumilake.host")
    with caplog.at_level(logging.ERROR, logger="tests.lumilake.host"):
        async with AsyncExitStack() as stack:
            try:
                await load(stack)
            except Exception:
                host.exception("Plugin %r install() failed validation; skipping.", PLUGIN)
    (record,) = caplog.records
    assert record.exc_info is not None
    assert "LUMID_ACL_DB_PATH" in str(record.exc_info[1])
    assert str(blocker) in str(record.exc_info[1])


async def test_grants_survive_a_restart(
    lumilake_env: dict[str, str], load: Loader, logger: logging.Logger
) -> None:
    alice = PrincipalContext(
        principal_id="alice",
        org_id="o",
        external_id="a",
        principal_type="user",
        scopes=["lumilake:jobs:submit"],
    )
    async with AsyncExitStack() as stack:
        first = await load(stack)
        await first.resource_registrars[0].register(alice, ResourceRef(kind="job", id="j"), logger)
    async with AsyncExitStack() as stack:
        second = await load(stack)
        await second.permission_checkers[0].require(
            alice, ResourceRef(kind="job", id="j"), "read", logger
        )


@pytest.mark.parametrize(
    "value",
    ["https://user:hunter2@opt.example.com", "https://u:hun@ter2@opt.example.com/x"],
)
def test_credentials_in_the_url_are_not_echoed(
    lumilake_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("LUMILAKE_REMOTE_OPTIMIZER_URL", value)
    with pytest.raises(SettingsError, match="LUMILAKE_REMOTE_OPTIMIZER_URL") as err:
        lumid_lumilake_plugin.install()
    assert "hunter2" not in str(err.value)
    assert "ter2" not in str(err.value)
    assert "opt.example.com" in str(err.value)

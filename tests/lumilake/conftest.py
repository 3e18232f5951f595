"""Fixtures for the Lumilake plugin: the fake remote optimizer and a Lumilake-shaped loader."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack

import lumid_hooks
import lumilake_hook
import pytest

import lumid_lumilake_plugin
from lumid_fakes import FakeOptimizer

SERVICE_TOKEN = "svc-" + "5" * 40
USER_TOKEN = "lm_pat_live_" + "a" * 64

type Loader = Callable[[AsyncExitStack], Awaitable[lumid_hooks.HookBindings]]

_LUMILAKE_VARS = (
    "LUMILAKE_REMOTE_OPTIMIZER_URL",
    "LUMILAKE_RUNTIME_TOKEN",
    "LUMILAKE_REMOTE_OPTIMIZER_TIMEOUT_SECONDS",
    "LUMILAKE_OPTIMIZER_CATALOG_TIMEOUT_SECONDS",
)


async def lumilake_load(stack: AsyncExitStack) -> lumid_hooks.HookBindings:
    """What Lumilake's lifespan does with a plugin module (docs/host-contracts.md)."""
    install = lumid_lumilake_plugin.__dict__.get("install")
    assert callable(install)
    installed = install()
    if isinstance(installed, AbstractAsyncContextManager):
        bindings = await stack.enter_async_context(installed)
    elif inspect.isawaitable(installed):
        bindings = await installed
    else:
        bindings = installed
    if not isinstance(bindings, lumid_hooks.HookBindings):
        raise TypeError("install() must return HookBindings")
    return bindings


@pytest.fixture
def lumilake_env(core_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The core environment with every Lumilake variable unset."""
    for name in _LUMILAKE_VARS:
        monkeypatch.delenv(name, raising=False)
    return core_env


@pytest.fixture
def fake_optimizer() -> Iterator[FakeOptimizer]:
    with FakeOptimizer(tokens={SERVICE_TOKEN, USER_TOKEN}) as fake:
        yield fake


@pytest.fixture
def optimizer_env(
    lumilake_env: dict[str, str], fake_optimizer: FakeOptimizer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    env = {
        **lumilake_env,
        "LUMILAKE_REMOTE_OPTIMIZER_URL": fake_optimizer.url + "/",
        "LUMILAKE_RUNTIME_TOKEN": SERVICE_TOKEN,
        "LUMILAKE_OPTIMIZER_CATALOG_TIMEOUT_SECONDS": "2",
        "LUMILAKE_REMOTE_OPTIMIZER_TIMEOUT_SECONDS": "5",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
async def bindings(lumilake_env: dict[str, str]) -> AsyncIterator[lumilake_hook.BaseBindings]:
    """The plugin loaded the way Lumilake's server loads it (no remote optimizer)."""
    async with AsyncExitStack() as stack:
        loaded = await lumilake_load(stack)
        assert isinstance(loaded, lumilake_hook.BaseBindings)
        yield loaded


@pytest.fixture
def quiet_logger() -> logging.Logger:
    return logging.getLogger("tests.lumilake")


@pytest.fixture
def service_token() -> str:
    return SERVICE_TOKEN


@pytest.fixture
def user_token() -> str:
    return USER_TOKEN


@pytest.fixture
def load() -> Loader:
    return lumilake_load

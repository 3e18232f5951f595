"""The remote optimizer against a real fake optimizer service on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import lumid_hooks
import lumilake_hook
import pytest
from lumilake_hook import OptimizerProvider, RemoteOptimizer, Schedule, runtime_token_var

import lumid_lumilake_plugin
from lumid_core import SettingsError, load_settings
from lumid_fakes import FakeLumId, FakeOptimizer
from lumid_fakes.server import Recorded, Reply
from lumid_lumilake_plugin import (
    CatalogError,
    LumilakeSettings,
    RemoteOptimizerProvider,
    fetch_optimizer_catalog,
)
from lumid_lumilake_plugin.optimizer import parse_catalog

type Loader = Callable[[AsyncExitStack], Awaitable[lumid_hooks.HookBindings]]

PLUGIN = "lumid_lumilake_plugin"


class Graph:
    """What Lumilake passes as `graph`: anything with `serialize()`."""

    def serialize(self) -> dict[str, Any]:
        return {"nodes": {"n1": {"task_type": "inference"}}, "node_order": ["n1"]}


def _provider(bindings: lumid_hooks.HookBindings) -> OptimizerProvider:
    assert isinstance(bindings, lumilake_hook.HookBindings)
    (provider,) = bindings.optimizer_providers
    return provider


def _schedule(handle: lumilake_hook.OptimizerHandle) -> Schedule:
    return handle.generate_schedule(
        Graph(), ["worker-1"], {"worker-1": {"gpu": "a100"}}, {"n1": [{"rows": 10}]}
    )


async def test_catalog_fetched_once_with_the_service_token(
    optimizer_env: dict[str, str],
    fake_optimizer: FakeOptimizer,
    load: Loader,
    service_token: str,
) -> None:
    async with AsyncExitStack() as stack:
        provider = _provider(await load(stack))
        for _ in range(3):
            assert provider.list_optimizers() == ["Remote-Greedy", "remote-ilp"]
        (call,) = fake_optimizer.catalog_calls()
        assert call.method == "GET"
        assert call.headers["authorization"] == f"Bearer {service_token}"
        returned = provider.list_optimizers()
        returned.clear()  # the host cannot damage the cache
        assert provider.list_optimizers() == ["Remote-Greedy", "remote-ilp"]
        assert getattr(provider, "name", None) == f"{PLUGIN}.optimizer"


async def test_schedule_forwards_the_submitter_bearer_through_to_thread(
    optimizer_env: dict[str, str],
    fake_optimizer: FakeOptimizer,
    load: Loader,
    service_token: str,
    user_token: str,
) -> None:
    async with AsyncExitStack() as stack:
        provider = _provider(await load(stack))
        handle = provider.create_optimizer("REMOTE-GREEDY", logger=logging.getLogger("host"))
        assert isinstance(handle, RemoteOptimizer)
        reset = runtime_token_var.set(user_token)
        try:
            schedule = await asyncio.to_thread(_schedule, handle)
        finally:
            runtime_token_var.reset(reset)
    assert schedule == Schedule(worker_assignment={"worker-1": ["n1"]})
    (call,) = fake_optimizer.schedule_calls()
    assert call.method == "POST"
    assert call.headers["authorization"] == f"Bearer {user_token}"
    assert service_token not in str(call.headers)
    assert service_token.encode() not in call.body
    assert call.json() == {
        "graph": Graph().serialize(),
        "worker_names": ["worker-1"],
        "worker_profiles": {"worker-1": {"gpu": "a100"}},
        "data_profile_results": {"n1": [{"rows": 10}]},
        "optimizer_type": "Remote-Greedy",
    }


async def test_without_a_submitter_bearer_the_service_token_is_not_used(
    optimizer_env: dict[str, str],
    fake_optimizer: FakeOptimizer,
    load: Loader,
    service_token: str,
) -> None:
    async with AsyncExitStack() as stack:
        provider = _provider(await load(stack))
        handle = provider.create_optimizer("remote-ilp")
        assert runtime_token_var.get() is None
        with pytest.raises(httpx.HTTPStatusError) as failed:
            await asyncio.to_thread(_schedule, handle)
    assert failed.value.response.status_code == 401
    assert service_token not in str(failed.value)
    (call,) = fake_optimizer.schedule_calls()
    assert "authorization" not in call.headers


async def test_unknown_name_lists_what_the_remote_advertises(
    optimizer_env: dict[str, str], fake_optimizer: FakeOptimizer, load: Loader
) -> None:
    async with AsyncExitStack() as stack:
        provider = _provider(await load(stack))
        with pytest.raises(ValueError, match="nope") as err:
            provider.create_optimizer("nope")
    assert "Remote-Greedy" in str(err.value)
    assert "remote-ilp" in str(err.value)
    assert fake_optimizer.schedule_calls() == []


async def test_catalog_is_auth_gated(
    optimizer_env: dict[str, str],
    fake_optimizer: FakeOptimizer,
    monkeypatch: pytest.MonkeyPatch,
    load: Loader,
    fake_lumid: FakeLumId,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without LUMILAKE_RUNTIME_TOKEN the remote says 401: Lumilake still gets
    identity and authorization, without the optimizer, and the log says why."""
    monkeypatch.delenv("LUMILAKE_RUNTIME_TOKEN")
    with caplog.at_level(logging.INFO, logger=PLUGIN):
        async with AsyncExitStack() as stack:
            bindings = await load(stack)
            assert isinstance(bindings, lumilake_hook.HookBindings)
            assert bindings.optimizer_providers == ()
            token = fake_lumid.add_token("alice", scopes=["lumilake:jobs:submit"])
            assert (
                await bindings.identity_providers[0].resolve(token, logging.getLogger()) is not None
            )
    (call,) = fake_optimizer.catalog_calls()
    assert "authorization" not in call.headers
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "HTTP 401" in errors[0]
    assert "LUMILAKE_RUNTIME_TOKEN" in errors[0]
    assert any("remote optimizer FAILED" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("status", "HTTP 500"),
        ("garbage", "not JSON"),
        ("shape", '"types" list'),
        ("drop", "Error"),
        ("hang", "no complete reply within"),
    ],
)
async def test_unusable_catalog_loads_without_the_optimizer_loudly(
    optimizer_env: dict[str, str],
    fake_optimizer: FakeOptimizer,
    monkeypatch: pytest.MonkeyPatch,
    load: Loader,
    service_token: str,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    reason: str,
) -> None:
    monkeypatch.setenv("LUMILAKE_OPTIMIZER_CATALOG_TIMEOUT_SECONDS", "0.3")
    fake_optimizer.catalog_mode = mode
    with caplog.at_level(logging.INFO, logger=PLUGIN):
        async with AsyncExitStack() as stack:
            bindings = await load(stack)
            assert isinstance(bindings, lumilake_hook.HookBindings)
            assert bindings.optimizer_providers == ()
            assert len(bindings.identity_providers) == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "NOT loaded" in errors[0].getMessage()
    assert reason in errors[0].getMessage()
    assert all(service_token not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"types": ["A", "b", "a", " c "]}, ["A", "b", "c"]),
        ({"types": []}, []),
    ],
)
def test_parse_catalog(body: object, names: list[str]) -> None:
    assert parse_catalog(body) == names


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"types": "halo"},
        {"types": [1]},
        {"types": [""]},
        {"types": ["x" * 201]},
        None,
        {"types": ["greedy\nERROR forged log line"]},  # logged at install, printed by doctor
        {"types": ["greedy\x1b[2J"]},
    ],
)
def test_parse_catalog_rejects(body: object) -> None:
    with pytest.raises(CatalogError):
        parse_catalog(body)


async def test_fetch_for_doctor_without_a_client(
    optimizer_env: dict[str, str], fake_optimizer: FakeOptimizer
) -> None:
    settings = load_settings(LumilakeSettings)
    assert await fetch_optimizer_catalog(settings) == ["Remote-Greedy", "remote-ilp"]
    fake_optimizer.tokens.clear()
    with pytest.raises(CatalogError, match="HTTP 401"):
        await fetch_optimizer_catalog(settings)


def test_service_token_is_never_shown(optimizer_env: dict[str, str], service_token: str) -> None:
    settings = load_settings(LumilakeSettings)
    assert service_token not in repr(settings)
    assert service_token not in str(settings.model_dump())


def test_plain_shape_fetches_the_catalog_on_first_lookup(
    optimizer_env: dict[str, str],
    fake_optimizer: FakeOptimizer,
    service_token: str,
    user_token: str,
) -> None:
    """Lumilake's job subprocess calls install() synchronously and uses the result
    as plain bindings: the optimizer must work there, with no event loop."""
    plain = lumid_lumilake_plugin.install()
    assert isinstance(plain, lumilake_hook.HookBindings)
    assert fake_optimizer.calls() == []
    provider = _provider(plain)
    assert provider is _provider(plain)
    assert provider.list_optimizers() == ["Remote-Greedy", "remote-ilp"]
    assert provider.list_optimizers() == ["Remote-Greedy", "remote-ilp"]
    (call,) = fake_optimizer.catalog_calls()
    assert call.headers["authorization"] == f"Bearer {service_token}"
    handle = provider.create_optimizer("remote-ilp", logger=None)
    reset = runtime_token_var.set(user_token)
    try:
        assert _schedule(handle).worker_assignment == {"worker-1": ["n1"]}
    finally:
        runtime_token_var.reset(reset)
    (sched,) = fake_optimizer.schedule_calls()
    assert sched.headers["authorization"] == f"Bearer {user_token}"


def test_lazy_catalog_failure_is_logged_and_retried_later(
    optimizer_env: dict[str, str],
    fake_optimizer: FakeOptimizer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_optimizer.catalog_mode = "status"
    settings = load_settings(LumilakeSettings)
    provider = RemoteOptimizerProvider(
        name="p", settings=settings, catalog=None, logger=logging.getLogger(PLUGIN)
    )
    with caplog.at_level(logging.ERROR, logger=PLUGIN):
        assert provider.list_optimizers() == []
        assert provider.list_optimizers() == []  # not hammered: one attempt per 30 s
    assert len(fake_optimizer.catalog_calls()) == 1
    assert len(caplog.records) == 1
    with pytest.raises(ValueError, match="advertises nothing"):
        provider.create_optimizer("remote-ilp")


def test_schedule_ignores_proxy_variables(
    optimizer_env: dict[str, str],
    fake_optimizer: FakeOptimizer,
    user_token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The submitter's bearer goes to the configured URL only, never to a proxy
    named by HTTP(S)_PROXY / ALL_PROXY (the catalog request ignores them too)."""
    with FakeOptimizer(tokens={user_token}) as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        provider = lumid_lumilake_plugin.install().optimizer_providers[0]
        handle = provider.create_optimizer("remote-ilp")
        reset = runtime_token_var.set(user_token)
        try:
            assert _schedule(handle).worker_assignment == {"worker-1": ["n1"]}
        finally:
            runtime_token_var.reset(reset)
        assert proxy.calls() == []
    (call,) = fake_optimizer.schedule_calls()
    assert call.headers["authorization"] == f"Bearer {user_token}"


class _DeepCatalog(FakeOptimizer):
    """A remote whose catalog is JSON nested too deeply for Python's parser."""

    def handle(self, request: Recorded) -> Reply | None:
        if request.path == "/api/v1/optimizer":
            return Reply(200, raw=b"[" * 100_000 + b"]" * 100_000)
        return super().handle(request)


async def test_a_too_deeply_nested_catalog_loads_without_the_optimizer(
    optimizer_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    load: Loader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """RecursionError is not a ValueError: it escaped install() and Lumilake then
    skipped the whole plugin (identity and authorization with it)."""
    with _DeepCatalog(tokens={"x"}) as deep:
        monkeypatch.setenv("LUMILAKE_REMOTE_OPTIMIZER_URL", deep.url)
        with caplog.at_level(logging.ERROR, logger=PLUGIN):
            async with AsyncExitStack() as stack:
                bindings = await load(stack)
                assert isinstance(bindings, lumilake_hook.HookBindings)
                assert bindings.optimizer_providers == ()
                assert len(bindings.permission_checkers) == 1
        (error,) = caplog.records
        assert "NOT loaded" in error.getMessage()
        assert "not JSON" in error.getMessage()


async def test_service_token_with_a_trailing_newline_is_used_stripped(
    optimizer_env: dict[str, str],
    fake_optimizer: FakeOptimizer,
    monkeypatch: pytest.MonkeyPatch,
    load: Loader,
    service_token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A secret mounted from a file often ends in a newline: h11 refused the header and
    echoed it (the service token) in the error that install() logs."""
    monkeypatch.setenv("LUMILAKE_RUNTIME_TOKEN", f" {service_token}\n")
    with caplog.at_level(logging.INFO, logger=PLUGIN):
        async with AsyncExitStack() as stack:
            provider = _provider(await load(stack))
            assert provider.list_optimizers() == ["Remote-Greedy", "remote-ilp"]
    (call,) = fake_optimizer.catalog_calls()
    assert call.headers["authorization"] == f"Bearer {service_token}"
    assert all(service_token not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("bad", ["svc-\u20ac-token", "svc-a\x01b", "svc-a b", "svc-a\r\nX-Evil: 1"])
def test_service_token_that_is_not_a_header_value_fails_install(
    optimizer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    """A non-ASCII token raised UnicodeEncodeError on entering (Lumilake then skips the
    whole plugin); control characters were echoed by h11. Refuse at install, unechoed."""
    monkeypatch.setenv("LUMILAKE_RUNTIME_TOKEN", bad)
    with pytest.raises(SettingsError, match="LUMILAKE_RUNTIME_TOKEN") as err:
        lumid_lumilake_plugin.install()
    assert "svc-" not in str(err.value)

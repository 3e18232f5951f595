"""A remote optimizer that drips bytes or sends a huge body: install and jobs go on."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from typing import Any

import lumilake_hook
import pytest
from lumilake_hook import runtime_token_var

from lumid_core.http import UpstreamError
from lumid_fakes import FakeOptimizer
from lumid_lumilake_plugin import CatalogError, LumilakeSettings, fetch_optimizer_catalog
from lumid_lumilake_plugin.optimizer import fetch_optimizer_catalog_sync

from .conftest import Loader

PLUGIN = "lumid_lumilake_plugin"


class Graph:
    def serialize(self) -> dict[str, Any]:
        return {"nodes": {"n1": {}}, "node_order": ["n1"]}


@pytest.mark.parametrize("delivery", ["drip-body", "drip-headers"])
async def test_a_dripping_catalog_loads_without_the_optimizer_promptly(
    optimizer_env: dict[str, str],
    fake_optimizer: FakeOptimizer,
    monkeypatch: pytest.MonkeyPatch,
    load: Loader,
    caplog: pytest.LogCaptureFixture,
    delivery: str,
) -> None:
    # Before: 39.1 s of server start-up with a 2 s timeout.
    monkeypatch.setenv("LUMILAKE_OPTIMIZER_CATALOG_TIMEOUT_SECONDS", "2")
    fake_optimizer.delivery = delivery
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger=PLUGIN):
        async with AsyncExitStack() as stack:
            bindings = await load(stack)
            assert isinstance(bindings, lumilake_hook.HookBindings)
            assert bindings.optimizer_providers == ()
            assert time.monotonic() - started < 6
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "NOT loaded" in errors[0]
    assert "no complete reply within 2s" in errors[0]


async def test_a_huge_catalog_is_refused(
    optimizer_env: dict[str, str], fake_optimizer: FakeOptimizer
) -> None:
    settings = LumilakeSettings()
    fake_optimizer.delivery = "huge"
    started = time.monotonic()
    with pytest.raises(CatalogError, match="byte cap"):
        await fetch_optimizer_catalog(settings)
    with pytest.raises(CatalogError, match="byte cap"):
        await asyncio.to_thread(fetch_optimizer_catalog_sync, settings)
    assert time.monotonic() - started < 10


async def test_the_lazy_catalog_fetch_is_bounded_even_inside_an_event_loop(
    optimizer_env: dict[str, str], fake_optimizer: FakeOptimizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Called from a coroutine (a running loop in this thread): a helper thread runs it.
    monkeypatch.setenv("LUMILAKE_OPTIMIZER_CATALOG_TIMEOUT_SECONDS", "1")
    fake_optimizer.delivery = "drip-body"
    started = time.monotonic()
    with pytest.raises(CatalogError, match="no complete reply within 1s"):
        fetch_optimizer_catalog_sync(LumilakeSettings())
    assert time.monotonic() - started < 4
    fake_optimizer.delivery = "normal"
    assert fetch_optimizer_catalog_sync(LumilakeSettings()) == ["Remote-Greedy", "remote-ilp"]


@pytest.mark.parametrize(
    ("variable", "value", "delivery", "error"),
    [
        # A schedule reply that drips fails at its deadline, not after the whole drip.
        (
            "LUMILAKE_REMOTE_OPTIMIZER_TIMEOUT_SECONDS",
            "2",
            "drip-body",
            "no complete reply within 2s",
        ),
        # A huge schedule reply is cut off at its cap, never held whole.
        ("LUMILAKE_REMOTE_OPTIMIZER_MAX_REPLY_BYTES", str(2**20), "huge", "1048576-byte cap"),
    ],
)
async def test_a_hostile_schedule_reply_fails_within_its_bounds(
    optimizer_env: dict[str, str],
    fake_optimizer: FakeOptimizer,
    monkeypatch: pytest.MonkeyPatch,
    load: Loader,
    user_token: str,
    variable: str,
    value: str,
    delivery: str,
    error: str,
) -> None:
    monkeypatch.setenv(variable, value)
    async with AsyncExitStack() as stack:
        bindings = await load(stack)
        assert isinstance(bindings, lumilake_hook.HookBindings)
        (provider,) = bindings.optimizer_providers
        handle = provider.create_optimizer("remote-ilp")
        fake_optimizer.delivery_paths["/api/v1/optimizer/schedule"] = delivery
        reset = runtime_token_var.set(user_token)
        try:
            started = time.monotonic()
            with pytest.raises(UpstreamError, match=error):
                await asyncio.to_thread(
                    handle.generate_schedule, Graph(), ["worker-1"], {"worker-1": {}}
                )
            assert time.monotonic() - started < 5
        finally:
            runtime_token_var.reset(reset)

"""lum.id identity against a real fake lum.id on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import HTTPException

from lumid_core import LumIdIdentityProvider, LumidSettings, MemoryPrincipalDirectory
from lumid_core.http import make_http_client
from lumid_fakes import FakeLumId


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


type Factory = Callable[..., LumIdIdentityProvider]


@pytest.fixture
async def make_provider(fake_lumid: FakeLumId) -> AsyncIterator[Factory]:
    clients: list[httpx.AsyncClient] = []

    def factory(
        clock: Callable[[], float] | None = None,
        directory: MemoryPrincipalDirectory | None = None,
        **overrides: Any,
    ) -> LumIdIdentityProvider:
        settings = LumidSettings(lum_id_base_url=fake_lumid.url + "/", **overrides)
        client = make_http_client(settings)
        clients.append(client)
        kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
        return LumIdIdentityProvider(
            name="t.identity", settings=settings, client=client, directory=directory, **kwargs
        )

    yield factory
    for client in clients:
        await client.aclose()


async def test_active_token_resolves_to_principal(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    directory = MemoryPrincipalDirectory()
    token = fake_lumid.add_token(
        "u-1", scopes=["flowmesh:workflows:read", "x:y"], email="a@example.com", role="admin"
    )
    provider = make_provider(directory=directory)
    principal = await provider.resolve(token, logger)
    assert principal is not None
    assert principal.principal_id == "u-1"
    assert principal.external_id == "u-1"
    assert principal.org_id == "lumid"
    assert principal.principal_type == "admin"
    assert principal.scopes == ["flowmesh:workflows:read", "x:y"]
    assert await directory.email_for("u-1") == "a@example.com"
    # The trailing slash of LUM_ID_BASE_URL is ignored and the token goes as a form field.
    (call,) = fake_lumid.calls()
    assert call.path == "/oauth/introspect"
    assert call.form() == {"token": token}


async def test_scope_string_used_when_no_list_and_role_defaults_to_user(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    token = fake_lumid.add_token("u-2", scopes=["a:b", "c:d"], scope_string_only=True)
    fake_lumid.tokens[token].pop("role")
    principal = await make_provider(lumid_org_id="acme").resolve(token, logger)
    assert principal is not None
    assert principal.scopes == ["a:b", "c:d"]
    assert principal.principal_type == "user"
    assert principal.org_id == "acme"


async def test_inactive_and_subless_tokens_are_not_claimed(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    provider = make_provider()
    revoked = fake_lumid.add_token("u-3")
    fake_lumid.revoke(revoked)
    subless = fake_lumid.add_token("u-4")
    del fake_lumid.tokens[subless]["sub"]
    assert await provider.resolve(revoked, logger) is None
    assert await provider.resolve(subless, logger) is None
    assert await provider.resolve("lm_pat_live_" + "0" * 64, logger) is None
    assert fake_lumid.introspections() == 3
    # Negative verdicts are not cached: a later call asks again.
    assert await provider.resolve(revoked, logger) is None
    assert fake_lumid.introspections() == 4


async def test_empty_and_oversized_tokens_make_no_call(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    provider = make_provider()
    huge = "x" * 8193
    fake_lumid.add_token("u-5", token=huge)
    assert await provider.resolve("", logger) is None
    assert await provider.resolve(huge, logger) is None
    assert await provider.resolve("é" * 5000, logger) is None  # 10 000 bytes in UTF-8
    assert fake_lumid.introspections() == 0


@pytest.mark.parametrize(
    ("mode", "status", "reason"),
    [
        ("status", 500, "HTTP 500"),
        ("status", 404, "HTTP 404"),
        ("status", 401, "HTTP 401"),
        ("garbage", 0, "not JSON"),
        ("shape", 0, "not a JSON object"),
        ("drop", 0, "RemoteProtocolError"),
    ],
)
async def test_upstream_failures_are_503(
    make_provider: Factory,
    fake_lumid: FakeLumId,
    logger: logging.Logger,
    mode: str,
    status: int,
    reason: str,
) -> None:
    token = fake_lumid.add_token("u-6")
    fake_lumid.mode = mode
    fake_lumid.status_code = status
    with pytest.raises(HTTPException) as caught:
        await make_provider().resolve(token, logger)
    assert caught.value.status_code == 503
    assert reason in str(caught.value.detail)
    assert token not in str(caught.value.detail)


@pytest.mark.parametrize(
    "reply",
    [
        {"sub": "x"},
        {"active": "yes", "sub": "x"},
        {"active": True, "sub": "x", "scopes": "a b"},
        {"active": True, "sub": "x", "scopes": ["a", 3]},
        {"active": True, "sub": "x", "scope": ["a"]},
        {"active": True, "sub": "x", "role": 7},
    ],
)
async def test_wrong_shaped_replies_are_503(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger, reply: dict[str, Any]
) -> None:
    token = fake_lumid.add_token("u-7")
    fake_lumid.tokens[token] = reply
    with pytest.raises(HTTPException) as caught:
        await make_provider().resolve(token, logger)
    assert caught.value.status_code == 503


async def test_unreachable_and_timeout_are_503(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    token = fake_lumid.add_token("u-8")
    fake_lumid.mode = "hang"
    with pytest.raises(HTTPException) as caught:
        await make_provider(lumid_introspect_timeout_seconds=0.2).resolve(token, logger)
    assert caught.value.status_code == 503
    assert "no complete reply within 0.2s" in str(caught.value.detail)
    fake_lumid.released.set()

    unreachable = LumidSettings(lum_id_base_url=f"http://127.0.0.1:{_free_port()}")
    async with make_http_client(unreachable) as client:
        provider = LumIdIdentityProvider(name="t", settings=unreachable, client=client)
        with pytest.raises(HTTPException) as caught:
            await provider.resolve(token, logger)
    assert caught.value.status_code == 503
    assert "ConnectError" in str(caught.value.detail)


async def test_callers_queued_behind_a_hung_lumid_get_their_503_in_time(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    # One slot, lum.id hung: each caller must get its 503 within the timeout, not
    # after every caller queued ahead of it has timed out in turn (N x timeout).
    provider = make_provider(lumid_introspect_concurrency=1, lumid_introspect_timeout_seconds=0.3)
    tokens = [fake_lumid.add_token(f"u-q{i}") for i in range(4)]
    fake_lumid.mode = "hang"
    try:
        results = await asyncio.gather(
            *(provider.resolve(t, logger) for t in tokens), return_exceptions=True
        )
    finally:
        fake_lumid.released.set()
    assert all(isinstance(r, HTTPException) and r.status_code == 503 for r in results), results
    assert fake_lumid.introspections() <= 2  # the others never waited their turn
    assert any("no introspection slot" in str(r) for r in results)


async def test_active_verdicts_are_cached_until_ttl(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    clock = Clock()
    provider = make_provider(clock=clock)
    token = fake_lumid.add_token("u-9")
    first = await provider.resolve(token, logger)
    clock.now += 59.9
    assert await provider.resolve(token, logger) is first
    assert fake_lumid.introspections() == 1
    clock.now += 0.2
    fake_lumid.revoke(token)
    assert await provider.resolve(token, logger) is None
    assert fake_lumid.introspections() == 2


async def test_an_active_reply_with_a_past_exp_is_inactive(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    import time

    provider = make_provider()
    expired = fake_lumid.add_token("u-10", exp=time.time() - 5)
    assert await provider.resolve(expired, logger) is None
    assert await provider.resolve(expired, logger) is None
    assert fake_lumid.introspections() == 2
    assert provider.cache_size == 0


async def test_cache_never_outlives_token_exp(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    import time

    clock = Clock()
    provider = make_provider(clock=clock)
    soon = fake_lumid.add_token("u-10c", exp=time.time() + 2)
    assert await provider.resolve(soon, logger) is not None
    clock.now += 5  # past exp, well inside the 60 s TTL: asked again
    fake_lumid.revoke(soon)
    assert await provider.resolve(soon, logger) is None
    assert fake_lumid.introspections() == 2


async def test_an_out_of_range_exp_is_no_500(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    # float(10**400) raises OverflowError: that must not escape as a 500.
    token = fake_lumid.add_token("u-10b", scopes=["a"])
    fake_lumid.tokens[token]["exp"] = 10**400
    principal = await make_provider().resolve(token, logger)
    assert principal is not None
    assert principal.principal_id == "u-10b"


async def test_cache_is_bounded_and_evicts_oldest(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    provider = make_provider(lumid_identity_cache_size=3)
    tokens = [fake_lumid.add_token(f"u-{i}") for i in range(5)]
    for token in tokens:
        await provider.resolve(token, logger)
    assert provider.cache_size == 3
    assert fake_lumid.introspections() == 5
    await provider.resolve(tokens[4], logger)  # newest: still cached
    assert fake_lumid.introspections() == 5
    await provider.resolve(tokens[0], logger)  # oldest: evicted, asked again
    assert fake_lumid.introspections() == 6


async def test_cache_keys_are_hashes_not_tokens(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    provider = make_provider()
    token = fake_lumid.add_token("u-11")
    await provider.resolve(token, logger)
    cache: dict[Any, Any] = provider._cache
    assert all(isinstance(k, bytes) and len(k) == 32 for k in cache)
    assert token not in repr(provider)
    assert all(token.encode() not in k for k in cache)


async def test_concurrent_resolves_share_one_introspection(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    provider = make_provider()
    token = fake_lumid.add_token("u-12")
    fake_lumid.delay = 0.2
    results = await asyncio.gather(*(provider.resolve(token, logger) for _ in range(50)))
    assert fake_lumid.introspections() == 1
    assert all(r is not None and r.principal_id == "u-12" for r in results)


async def test_concurrent_failures_share_one_503(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    provider = make_provider()
    token = fake_lumid.add_token("u-13")
    fake_lumid.mode = "status"
    fake_lumid.delay = 0.1
    results = await asyncio.gather(
        *(provider.resolve(token, logger) for _ in range(20)), return_exceptions=True
    )
    assert fake_lumid.introspections() == 1
    assert all(isinstance(r, HTTPException) and r.status_code == 503 for r in results)
    # The failure is not cached: the next call asks again.
    fake_lumid.mode = "ok"
    fake_lumid.delay = 0
    assert await provider.resolve(token, logger) is not None


async def test_a_cancelled_caller_does_not_cancel_the_others(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    provider = make_provider()
    token = fake_lumid.add_token("u-14")
    fake_lumid.delay = 0.2
    first = asyncio.create_task(provider.resolve(token, logger))
    await asyncio.sleep(0.05)  # the first caller is introspecting
    second = asyncio.create_task(provider.resolve(token, logger))
    third = asyncio.create_task(provider.resolve(token, logger))
    await asyncio.sleep(0.05)
    third.cancel()  # a waiter going away changes nothing for the others
    first.cancel()  # the caller introspecting goes away: a waiter asks again
    principal = await second
    assert principal is not None
    assert principal.principal_id == "u-14"
    assert first.cancelled()
    assert third.cancelled()
    assert fake_lumid.introspections() == 2
    assert await provider.resolve(token, logger) is principal  # cached by the second


async def test_a_cancelled_waiter_does_not_cancel_the_introspection(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    provider = make_provider()
    token = fake_lumid.add_token("u-14b")
    fake_lumid.delay = 0.2
    first = asyncio.create_task(provider.resolve(token, logger))
    await asyncio.sleep(0.05)
    waiter = asyncio.create_task(provider.resolve(token, logger))
    await asyncio.sleep(0.05)
    waiter.cancel()
    assert await first is not None
    assert waiter.cancelled()
    assert fake_lumid.introspections() == 1


async def test_introspections_bounded_and_pooled(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    provider = make_provider(lumid_introspect_concurrency=4)
    tokens = [fake_lumid.add_token(f"p-{i}") for i in range(40)]
    fake_lumid.delay = 0.01
    await asyncio.gather(*(provider.resolve(t, logger) for t in tokens))
    calls = fake_lumid.calls()
    assert len(calls) == 40
    # One pooled client with at most 4 in flight: a handful of connections, reused.
    assert len({c.peer for c in calls}) <= 4


async def test_no_token_in_logs_or_errors(
    make_provider: Factory,
    fake_lumid: FakeLumId,
    caplog: pytest.LogCaptureFixture,
    logger: logging.Logger,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = fake_lumid.add_token("u-15")
    provider = make_provider()
    await provider.resolve(token, logger)
    fake_lumid.mode = "status"
    other = fake_lumid.add_token("u-16")
    with pytest.raises(HTTPException) as caught:
        await provider.resolve(other, logger)
    text = caplog.text + repr(caught.value) + str(caught.value.detail)
    assert "lum.id introspection" in caplog.text
    assert token not in text
    assert other not in text


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

"""A lum.id that drips bytes, sends a huge body or nonsense: a prompt 503, never a 500."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import HTTPException

from lumid_core import LumIdIdentityProvider, LumidSettings
from lumid_core.http import make_http_client
from lumid_fakes import FakeLumId

type Factory = Callable[..., LumIdIdentityProvider]


@pytest.fixture
async def make_provider(fake_lumid: FakeLumId) -> AsyncIterator[Factory]:
    clients: list[httpx.AsyncClient] = []

    def factory(url: str | None = None, **overrides: Any) -> LumIdIdentityProvider:
        settings = LumidSettings(lum_id_base_url=url or fake_lumid.url, **overrides)
        client = make_http_client(settings)
        clients.append(client)
        return LumIdIdentityProvider(name="t.identity", settings=settings, client=client)

    yield factory
    for client in clients:
        await client.aclose()


async def _refused(
    provider: LumIdIdentityProvider, token: str, logger: logging.Logger
) -> tuple[HTTPException, float]:
    started = time.monotonic()
    with pytest.raises(HTTPException) as caught:
        await provider.resolve(token, logger)
    return caught.value, time.monotonic() - started


@pytest.mark.parametrize("delivery", ["drip-body", "drip-headers"])
async def test_a_dripping_lumid_is_a_503_within_the_timeout(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger, delivery: str
) -> None:
    # One byte every 1.5 s: each read is quick, the reply never completes. Before,
    # callers waited for the whole reply (58.6 s for the body, 22.6 s for headers).
    tokens = [fake_lumid.add_token(f"drip-{i}", email=f"d{i}@example.com") for i in range(3)]
    fake_lumid.delivery = delivery
    provider = make_provider(lumid_introspect_timeout_seconds=2, lumid_introspect_concurrency=2)
    started = time.monotonic()
    results = await asyncio.gather(
        *(provider.resolve(t, logger) for t in tokens), return_exceptions=True
    )
    elapsed = time.monotonic() - started
    assert all(isinstance(r, HTTPException) and r.status_code == 503 for r in results), results
    for r in results:
        assert isinstance(r, HTTPException)
        assert r.headers == {"Retry-After": "5"}
    # Two in flight, one queued behind them (at most a slot wait + its own deadline).
    assert elapsed < 7, elapsed
    assert any("no complete reply within 2s" in str(r) for r in results)
    # The slots came back: once lum.id behaves, the next caller is served at once.
    fake_lumid.delivery = "normal"
    assert await provider.resolve(tokens[0], logger) is not None


async def test_a_huge_declared_reply_is_refused_before_reading(
    make_provider: Factory, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    token = fake_lumid.add_token("huge-1")
    fake_lumid.delivery = "huge-declared"
    refused, elapsed = await _refused(make_provider(), token, logger)
    assert refused.status_code == 503
    assert "over the 262144-byte cap" in str(refused.detail)
    assert elapsed < 3


@pytest.fixture
def huge_lumid() -> Iterator[str]:
    """A lum.id in its own process streaming a 300 MiB chunked reply to every call."""
    argv = ["lumid", "--server", "threaded", "--delivery", "huge"]
    proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "lumid_fakes", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        yield str(json.loads(line)["url"])
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()


async def test_a_huge_streamed_reply_is_cut_off_at_the_cap(
    make_provider: Factory, huge_lumid: str, logger: logging.Logger
) -> None:
    # 300 MiB without a Content-Length: before, it was read and parsed whole
    # (51 -> 731 MiB RSS for one call). Now reading stops at the cap.
    provider = make_provider(url=huge_lumid, lumid_introspect_timeout_seconds=20)
    tracemalloc.start()
    try:
        refused, elapsed = await _refused(provider, "lm_pat_live_" + "0" * 64, logger)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.status_code == 503
    assert "over the 262144-byte cap" in str(refused.detail)
    assert peak < 16 * 2**20, peak  # the cap is 256 KiB; the reply was 300 MiB
    assert elapsed < 10


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 200_000, "nested too deeply"),
        (b'{"a":' * 40_000 + b"1" + b"}" * 40_000, "nested too deeply"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"1" * 10_000, "not JSON"),  # ints past 4,300 digits raise ValueError
        (json.dumps({"active": True, "sub": "eve\ud800"}).encode(), "'sub' is not valid"),
        (
            json.dumps({"active": True, "sub": "eve", "email": "e\udfff@x"}).encode(),
            "'email' is not valid",
        ),
        (
            json.dumps({"active": True, "sub": "eve", "scopes": ["a", "\ud83d"]}).encode(),
            "a scope is not valid",
        ),
        (
            json.dumps({"active": True, "sub": "eve", "role": "\udc00"}).encode(),
            "'role' is not valid",
        ),
    ],
)
async def test_nonsense_from_lumid_is_a_503(
    make_provider: Factory,
    fake_lumid: FakeLumId,
    logger: logging.Logger,
    raw: bytes,
    reason: str,
) -> None:
    fake_lumid.mode = "raw"
    fake_lumid.raw_body = raw
    provider = make_provider()
    # Every caller sharing the flight gets the 503 (before: a RecursionError each).
    results = await asyncio.gather(
        *(provider.resolve("lm_pat_live_" + "1" * 64, logger) for _ in range(5)),
        return_exceptions=True,
    )
    for r in results:
        assert isinstance(r, HTTPException), r
        assert r.status_code == 503
        assert reason in str(r.detail), r.detail
        str(r.detail).encode("utf-8")  # the reason itself is printable anywhere
    assert fake_lumid.introspections() == 1


async def test_a_lone_surrogate_sub_never_reaches_the_store(
    runtime: Any, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    # Before, "eve\ud800" became a principal and register/require raised
    # UnicodeEncodeError (a 500) in SQLite.
    fake_lumid.mode = "raw"
    fake_lumid.raw_body = json.dumps(
        {"active": True, "sub": "eve\ud800", "email": "eve@example.com", "scopes": ["*"]}
    ).encode()
    with pytest.raises(HTTPException) as caught:
        await runtime.identity.resolve("lm_pat_live_" + "2" * 64, logger)
    assert caught.value.status_code == 503
    assert runtime.db.read_one("SELECT count(*) FROM principals") == (0,)

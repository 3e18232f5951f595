"""`LaneTransport`: one-connection lanes, returned on close and on failure."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from lumid_core.http import LaneTransport
from lumid_fakes import FakeLumId


async def test_lanes_reuse_warm_connections(fake_lumid: FakeLumId) -> None:
    token = fake_lumid.add_token("lane-user")
    async with httpx.AsyncClient(transport=LaneTransport(8), trust_env=False) as client:
        for _ in range(5):  # sequential: the same warm lane every time
            reply = await client.post(f"{fake_lumid.url}/oauth/introspect", data={"token": token})
            assert reply.json()["sub"] == "lane-user"
        assert len({c.peer for c in fake_lumid.calls()}) == 1
        fake_lumid.delay = 0.02
        replies = await asyncio.gather(
            *(
                client.post(f"{fake_lumid.url}/oauth/introspect", data={"token": token})
                for _ in range(20)
            )
        )
    assert all(r.json()["active"] for r in replies)
    assert len({c.peer for c in fake_lumid.calls()}) <= 8


async def test_a_failed_request_gives_its_lane_back(fake_lumid: FakeLumId) -> None:
    fake_lumid.mode = "drop"  # close the connection without a reply
    transport = LaneTransport(1)
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
        for _ in range(3):  # with one lane, a leaked lane would block the next call
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(f"{fake_lumid.url}/oauth/introspect", data={"token": "x"})
        fake_lumid.mode = "ok"
        reply = await client.post(f"{fake_lumid.url}/oauth/introspect", data={"token": "x"})
        assert reply.json() == {"active": False, "reason": "unknown token"}


async def test_waiting_for_a_lane_honours_the_pool_timeout(fake_lumid: FakeLumId) -> None:
    fake_lumid.mode = "hang"
    timeout = httpx.Timeout(5.0, pool=0.05)
    async with httpx.AsyncClient(
        transport=LaneTransport(1), timeout=timeout, trust_env=False
    ) as client:
        url = f"{fake_lumid.url}/oauth/introspect"
        busy = asyncio.create_task(client.post(url, data={"token": "x"}))
        async with asyncio.timeout(10):  # until the first request holds the only lane
            while not fake_lumid.calls():  # noqa: ASYNC110 (the fake serves from a thread)
                await asyncio.sleep(0.01)
        with pytest.raises(httpx.PoolTimeout):
            await client.post(url, data={"token": "y"})
        fake_lumid.released.set()
        busy.cancel()
        with pytest.raises((asyncio.CancelledError, httpx.HTTPError)):
            await busy


def test_a_lane_transport_needs_a_lane() -> None:
    with pytest.raises(ValueError, match="at least one lane"):
        LaneTransport(0)

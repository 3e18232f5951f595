"""The cache-hit path reads a coarse clock: entries still expire on time."""

from __future__ import annotations

import asyncio
import logging

from lumid_core import LumidSettings, load_settings
from lumid_core.http import make_http_client
from lumid_core.identity import COARSE_CLOCK_SECONDS, LumIdIdentityProvider
from lumid_fakes import FakeLumId


async def test_cached_entries_expire_with_the_default_clock(
    fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    ttl = 0.2
    settings = load_settings(
        LumidSettings, lum_id_base_url=fake_lumid.url, lumid_identity_cache_ttl_seconds=ttl
    )
    token = fake_lumid.add_token("clock-user", scopes=["flowmesh:read"])
    async with make_http_client(settings) as client:
        provider = LumIdIdentityProvider(name="t", settings=settings, client=client)
        first = await provider.resolve(token, logger)
        assert first is not None
        assert (await provider.resolve(token, logger)) == first
        assert fake_lumid.introspections() == 1  # a hit
        await asyncio.sleep(ttl + 2 * COARSE_CLOCK_SECONDS + 0.05)
        assert (await provider.resolve(token, logger)) == first
        assert fake_lumid.introspections() == 2  # expired: asked again
        fake_lumid.revoke(token)
        await asyncio.sleep(ttl + 2 * COARSE_CLOCK_SECONDS + 0.05)
        assert await provider.resolve(token, logger) is None
        assert fake_lumid.introspections() == 3

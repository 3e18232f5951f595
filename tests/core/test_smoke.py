from __future__ import annotations

import logging

from lumid_hooks import ResourceRef

from lumid_core import Level
from lumid_core.runtime import CoreRuntime
from lumid_fakes import FakeLumId


async def test_resolve_register_require(
    runtime: CoreRuntime, fake_lumid: FakeLumId, logger: logging.Logger
) -> None:
    token = fake_lumid.add_token("alice", scopes=["x:read"], email="alice@example.com")
    principal = await runtime.identity.resolve(token, logger)
    assert principal is not None
    assert principal.principal_id == "alice"
    assert principal.scopes == ["x:read"]
    assert await runtime.directory.email_for("alice") == "alice@example.com"
    await runtime.registrar.register(principal, ResourceRef(kind="job", id="j1"), logger)
    assert await runtime.store.level("job", "j1", "alice") is Level.WRITE
    assert await runtime.store.ids("job", "alice", Level.READ) == frozenset({"j1"})

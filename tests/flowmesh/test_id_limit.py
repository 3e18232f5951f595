"""Ids up to MAX_ID_BYTES work through the hooks; longer ones are denied, cleanly."""

from __future__ import annotations

import logging

import pytest
from fastapi import HTTPException
from lumid_hooks import ResourceRef

from lumid_core.limits import MAX_ID_BYTES
from lumid_fakes import FakeLumId
from lumid_flowmesh_plugin import FlowMeshBindings

LOG = logging.getLogger("tests.id_limit")


async def test_ids_up_to_the_limit_work_and_longer_ones_are_denied(
    plugin: FlowMeshBindings, fake_lumid: FakeLumId
) -> None:
    token = fake_lumid.add_token("alice", scopes=["flowmesh:workflows:write"], email="a@x.io")
    (identity,) = plugin.identity_providers
    alice = await identity.resolve(token, LOG)
    assert alice is not None
    (registrar,) = plugin.resource_registrars
    (checker,) = plugin.permission_checkers

    # at the limit, in multi-byte characters too: registered, allowed, listed
    at_limit = "é" * (MAX_ID_BYTES // 2)
    assert len(at_limit.encode()) == MAX_ID_BYTES
    await registrar.register(alice, ResourceRef(kind="workflow", id=at_limit), LOG)
    await checker.require(alice, ResourceRef(kind="workflow", id=at_limit), "write", LOG)
    ids = await checker.accessible_ids(alice, "workflow", "write", LOG)
    assert ids is not None
    assert at_limit in ids

    over = at_limit + "x"
    with pytest.raises(HTTPException) as refused:
        await registrar.register(alice, ResourceRef(kind="workflow", id=over), LOG)
    assert refused.value.status_code == 422
    with pytest.raises(HTTPException) as denied:
        await checker.require(alice, ResourceRef(kind="workflow", id=over), "read", LOG)
    assert denied.value.status_code == 403
    assert f"longer than {MAX_ID_BYTES} bytes" in str(denied.value.detail)
    assert len(str(denied.value.detail)) < 300  # the id is not echoed whole
    # a 50 MB id costs one length check, and the accessible ids are unaffected
    with pytest.raises(HTTPException):
        await checker.require(alice, ResourceRef(kind="workflow", id="x" * 50_000_000), "read", LOG)
    assert await checker.accessible_ids(alice, "workflow", "write", LOG) == ids

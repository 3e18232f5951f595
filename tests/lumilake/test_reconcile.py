"""Lumilake's startup reconcile passes JOB refs only (possibly none): it must never
drop TRACE or ARTIFACT grants, and only stale JOB grants go."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import lumid_hooks
from lumid_hooks import PrincipalContext, ResourceRef

from lumid_core import Level
from lumid_lumilake_plugin import LumilakePermissions

type Loader = Callable[[AsyncExitStack], Awaitable[lumid_hooks.HookBindings]]

ALICE = PrincipalContext(
    principal_id="alice",
    org_id="lumid",
    external_id="alice",
    principal_type="user",
    scopes=["lumilake:jobs:submit", "lumilake:trace:read"],
)


async def _first_run(load: Loader, logger: logging.Logger) -> None:
    async with AsyncExitStack() as stack:
        bindings = await load(stack)
        (registrar,) = bindings.resource_registrars
        for ref in (
            ResourceRef(kind="job", id="job-live"),
            ResourceRef(kind="job", id="job-gone"),
            ResourceRef(kind="trace", id="trace-of-gone"),
            ResourceRef(kind="artifact", id="job-gone/out.csv"),
        ):
            await registrar.register(ALICE, ref, logger)


async def _grants(bindings: lumid_hooks.HookBindings) -> set[tuple[str, str]]:
    (checker,) = bindings.permission_checkers
    assert isinstance(checker, LumilakePermissions)
    return {(g.kind, g.id) async for g in checker._store.iter_grants(principal_id="alice")}


async def test_job_only_reconcile_keeps_traces_and_artifacts(
    lumilake_env: dict[str, str], load: Loader, logger: logging.Logger
) -> None:
    await _first_run(load, logger)
    async with AsyncExitStack() as stack:  # the restart
        bindings = await load(stack)
        (registrar,) = bindings.resource_registrars
        (checker,) = bindings.permission_checkers
        await registrar.reconcile([ResourceRef(kind="job", id="job-live")], logger)
        assert await _grants(bindings) == {
            ("job", "job-live"),
            ("trace", "trace-of-gone"),
            ("artifact", "job-gone/out.csv"),
        }
        # The completed job's trace and artifact stay readable by their owner.
        await checker.require(ALICE, ResourceRef(kind="trace", id="trace-of-gone"), "read", logger)
        await checker.require(
            ALICE, ResourceRef(kind="artifact", id="job-gone/out.csv"), "read", logger
        )


async def test_empty_reconcile_drops_nothing(
    lumilake_env: dict[str, str], load: Loader, logger: logging.Logger
) -> None:
    await _first_run(load, logger)
    async with AsyncExitStack() as stack:
        bindings = await load(stack)
        before = await _grants(bindings)
        await bindings.resource_registrars[0].reconcile([], logger)
        assert await _grants(bindings) == before
        assert len(before) == 4


async def test_reconcile_keeps_grants_written_since_startup(
    lumilake_env: dict[str, str], load: Loader, logger: logging.Logger
) -> None:
    async with AsyncExitStack() as stack:
        bindings = await load(stack)
        (registrar,) = bindings.resource_registrars
        await registrar.register(ALICE, ResourceRef(kind="job", id="job-new"), logger)
        await registrar.reconcile([ResourceRef(kind="job", id="job-other")], logger)
        (checker,) = bindings.permission_checkers
        assert isinstance(checker, LumilakePermissions)
        assert await checker._store.level("job", "job-new", "alice") is Level.WRITE

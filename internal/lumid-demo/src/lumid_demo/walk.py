"""One realistic session through every hook of an installed plugin, played from data.

    python -m lumid_demo.walk flowmesh|lumilake

Runs inside the demo venv, where the plugin came from the local index: it starts
the lum.id, Runmesh and optimizer emulators on 127.0.0.1, gives the plugin the
environment an operator would set, loads it exactly as its host does (`hosts`), and
plays the scenario's steps (`scenarios`) in the order a real session makes the calls.
Every step states what it expects; the exit code is 0 only when every one held.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Final

from lumid_fakes.environ import operator_env

from .hosts import Loaded, describe, load_flowmesh, load_lumilake
from .report import Walk
from .scenarios import SCENARIOS, Scenario, Stage
from .session import Section, Session, Step, StepError

__all__ = ["Walk", "main", "play"]


@dataclass(frozen=True)
class _Host:
    title: str
    loading: str
    hook_module: str
    load: Callable[[str, AsyncExitStack], Awaitable[tuple[list[Loaded], list[str]]]]


async def _load_flowmesh(spec: str, stack: AsyncExitStack) -> tuple[list[Loaded], list[str]]:
    return await load_flowmesh(spec, stack), []  # FlowMesh skips nothing: it raises


HOSTS: Final = {
    "flowmesh": _Host(
        "FlowMesh",
        "load: import_module + install() entered on the lifespan's AsyncExitStack",
        "flowmesh_hook",
        _load_flowmesh,
    ),
    "lumilake": _Host(
        "Lumilake",
        "load: __import__(fromlist=['install']) + __dict__.get('install'), entered",
        "lumilake_hook",
        load_lumilake,
    ),
}


def _grants(db: Path) -> list[tuple[str, str, str, int]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT kind, id, principal_id, level FROM grants ORDER BY kind, id, principal_id"
        ).fetchall()
    finally:
        conn.close()
    return [(str(k), str(i), str(p), int(lv)) for k, i, p, lv in rows]


def _print_grants(walk: Walk, db: Path) -> set[tuple[str, str, str]]:
    grants = _grants(db)
    walk.section(f"grants in {db.name}")
    for kind, id_, principal, level in grants:
        walk.note(f"{kind:<9} {id_:<24} {principal:<10} {'WRITE' if level == 2 else 'READ'}")
    return {(kind, id_, principal) for kind, id_, principal, _level in grants}


async def _load(
    walk: Walk, scenario: Scenario, stage: Stage, lifespan: AsyncExitStack
) -> Loaded | None:
    host = HOSTS[scenario.host]
    try:
        loaded, skipped = await host.load(stage.env[scenario.plugins_var], lifespan)
    except Exception as exc:  # the host would not start: report it as the failed step
        walk.check(host.loading, False, f"{type(exc).__name__}: {exc}")
        return None
    plugin = loaded[0] if len(loaded) == 1 and not skipped else None
    detail = (
        f"passes lumid_hooks.HookBindings and {host.hook_module}.HookBindings"
        if plugin is not None and plugin.extra
        else f"{scenario.extra_field} NOT taken; loaded={len(loaded)} skipped={skipped}"
    )
    walk.check(host.loading, plugin is not None, detail)
    if plugin is not None:
        for line in describe(scenario.host, plugin):
            walk.note(line)
    return plugin


async def _play_step(step: Step, session: Session) -> None:
    try:
        await step.play(session)
    except Exception as exc:  # a hook that raises where it should not is a failed step
        label: str = getattr(step, "says", "") or repr(step)[:100]
        reason = str(exc) if isinstance(exc, StepError) else f"{type(exc).__name__}: {exc}"
        session.walk.check(label, False, f"raised: {reason}")


async def _play_sections(sections: Sequence[Section], session: Session) -> None:
    for section in sections:
        session.walk.section(section.title)
        for step in section.steps:
            await _play_step(step, session)


async def play(walk: Walk, scenario: Scenario, data: Path) -> None:
    """Stage, load, play every section's steps in order, shut down, check the grants."""
    with scenario.stage(data) as stage:
        walk.section(
            f"{HOSTS[scenario.host].title} host, {scenario.dist} {version(scenario.dist)} "
            f"on lumid-core {version('lumid-core')}"
        )
        walk.note(stage.where)
        with operator_env(stage.env):
            async with AsyncExitStack() as lifespan:
                plugin = await _load(walk, scenario, stage, lifespan)
                if plugin is None:
                    return
                session = Session(
                    walk=walk,
                    env=stage.env,
                    bindings=plugin.bindings,
                    people=stage.people,
                    lumid=stage.lumid,
                    any_case_scheme=scenario.host == "lumilake",
                    suppliers=plugin.extra if scenario.host == "flowmesh" else (),
                    optimizers=plugin.extra if scenario.host == "lumilake" else (),
                    runmesh=stage.runmesh,
                    optimizer=stage.optimizer,
                )
                await _play_sections(scenario.sections, session)
            walk.check(scenario.shutdown_says, True)
        owned = _print_grants(walk, stage.db)
        walk.check(scenario.owned_says, scenario.owned <= owned)


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def main(argv: Sequence[str]) -> int:
    """`python -m lumid_demo.walk flowmesh|lumilake` (or `--versions`)."""
    logging.basicConfig(
        level=logging.WARNING, format="        log %(levelname)s %(name)s: %(message)s"
    )
    if list(argv) == ["--versions"]:
        names = ("lumid-flowmesh-plugin", "lumid-lumilake-plugin", "lumid-core", "lumid-hooks",
                 "flowmesh-hook", "lumilake-hook")  # fmt: skip
        print(", ".join(f"{n} {v}" for n in names if (v := _installed(n))))
        return 0
    if len(argv) != 1 or argv[0] not in SCENARIOS:
        print("usage: python -m lumid_demo.walk flowmesh|lumilake", file=sys.stderr)
        return 2
    walk = Walk()
    with tempfile.TemporaryDirectory(prefix="lumid-demo-data-") as data:
        asyncio.run(play(walk, SCENARIOS[argv[0]], Path(data)))
    if walk.failures:
        print(
            f"\n{argv[0]}: {len(walk.failures)} of {walk.steps} steps did NOT behave as expected:"
        )
        for failure in walk.failures:
            print(f"  - {failure}")
        return 1
    print(f"\n{argv[0]}: all {walk.steps} steps behaved as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The demo's walk, played in-process against the workspace's plugins.

`make demo` plays the same scenarios inside fresh venvs built from the wheels; here
they run against the checkout, so a scenario that no longer matches the plugins (or a
walk that stops counting misbehaving steps) fails in the fast suite.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import lumid_demo.walk as walk_module
from lumid_demo.report import Walk
from lumid_demo.scenarios import FLOWMESH, LUMILAKE, SCENARIOS, Stage
from lumid_demo.session import Section
from lumid_demo.steps import Listing, Require, Resolve
from lumid_demo.walk import main, play
from lumid_fakes.environ import operator_env


@pytest.mark.parametrize("host", sorted(SCENARIOS))
async def test_every_step_of_the_scenario_behaves(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = dict(os.environ)
    walk = Walk()
    await play(walk, SCENARIOS[host], tmp_path)
    out = capsys.readouterr().out
    assert walk.failures == [], out
    assert walk.steps > 25
    assert "denied 403" in out  # the reasons are printed, not just the verdicts
    assert "-- grants in lumid_acl.sqlite" in out
    assert dict(os.environ) == before  # the operator's variables did not leak


async def test_unexpected_outcomes_and_raising_steps_are_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = dataclasses.replace(
        LUMILAKE,
        sections=(
            Section("identity", (Resolve("alice", "Bearer"), Resolve("bob", "Bearer"))),
            Section("wrong expectations", (
                Require("bob", "job", "job-9", "read"),  # no grant: denied, expected allowed
                Require("alice", "job", None, "write", denied=403),  # allowed, expected 403
                Listing("alice", "job", "read", frozenset({"job-9"})),  # really {}
                Require("nobody", "job", None, "write"),  # never resolved: cannot be played
            )),
        ),
        owned=frozenset({("job", "job-9", "alice")}),  # never registered
    )  # fmt: skip
    walk = Walk()
    await play(walk, wrong, tmp_path)
    out = capsys.readouterr().out
    assert len(walk.failures) == 5, out
    assert "nobody was not resolved by an earlier step" in out
    assert "alice  require(job, -, write): ALLOWED" in out


@contextmanager
def _stage_naming_a_missing_plugin(data: Path) -> Iterator[Stage]:
    with FLOWMESH.stage(data) as stage:
        stage.env["FLOWMESH_PLUGINS"] = "lumid_no_such_plugin"
        yield stage


async def test_a_plugin_the_host_cannot_load_is_a_failed_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = dataclasses.replace(FLOWMESH, stage=_stage_naming_a_missing_plugin)
    walk = Walk()
    await play(walk, broken, tmp_path)
    out = capsys.readouterr().out
    assert walk.failures == [
        "load: import_module + install() entered on the lifespan's AsyncExitStack"
    ], out
    assert "ModuleNotFoundError" in out


def test_operator_env_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMID_DEMO_KEPT", "before")
    monkeypatch.delenv("LUMID_DEMO_ADDED", raising=False)
    with operator_env({"LUMID_DEMO_KEPT": "during", "LUMID_DEMO_ADDED": "during"}):
        assert os.environ["LUMID_DEMO_KEPT"] == "during"
        assert os.environ["LUMID_DEMO_ADDED"] == "during"
    assert os.environ["LUMID_DEMO_KEPT"] == "before"
    assert "LUMID_DEMO_ADDED" not in os.environ


def test_unknown_host_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nowhere"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_main_exits_non_zero_when_a_step_misbehaves(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = dataclasses.replace(
        LUMILAKE,
        sections=(
            Section("bob reads a job he does not own", (
                Resolve("bob", "Bearer"),
                Require("bob", "job", "job-1", "read"),  # denied: expected allowed
            )),
        ),
        owned=frozenset(),
    )  # fmt: skip
    monkeypatch.setattr(walk_module, "SCENARIOS", {"lumilake": wrong})
    assert main(["lumilake"]) == 1
    out = capsys.readouterr().out
    assert "lumilake: 1 of " in out
    assert "  - bob    require(job, job-1, read)" in out

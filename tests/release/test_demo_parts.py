"""The demo's and the release script's own logic, without building anything."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from types import ModuleType

import pytest
from fastapi import HTTPException

from lumid_demo.hosts import LoadError, load_flowmesh, load_lumilake
from lumid_demo.walk import Walk

ROOT = Path(__file__).resolve().parents[2]


def _load_release() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release_script", ROOT / "scripts" / "release.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_publish_output_is_redacted() -> None:
    release = _load_release()
    env = {"UV_PUBLISH_PASSWORD": "hunter2-secret", "UV_PUBLISH_TOKEN": "pypi-tok-123"}
    line = "error: 403 for https://bob:hunter2-secret@idx.example/legacy/ with pypi-tok-123"
    out = release.redact(line, env)
    assert "hunter2-secret" not in out
    assert "pypi-tok-123" not in out
    assert "bob:" not in out
    assert "https://****@idx.example/legacy/" in out


async def _allow() -> None:
    return None


async def _deny() -> None:
    raise HTTPException(status_code=403, detail="forbidden: no grant")


async def test_walk_counts_every_unexpected_outcome() -> None:
    walk = Walk()
    await walk.allowed("alice", "allowed as expected", _allow())
    await walk.denied("bob", "denied as expected", _deny(), 403)
    assert walk.failures == []
    await walk.denied("bob", "allowed but should be denied", _allow(), 403)
    await walk.allowed("alice", "denied but should be allowed", _deny())
    await walk.denied("bob", "denied with the wrong status", _deny(), 402)
    assert walk.check("a false expectation", False) is False
    assert len(walk.failures) == 4
    assert walk.steps == 6


@pytest.fixture
def bad_plugins(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "demo_plugin_not_bindings.py").write_text("def install():\n    return object()\n")
    (tmp_path / "demo_plugin_no_install.py").write_text("VALUE = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield "demo_plugin_not_bindings"
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("demo_plugin_not_bindings", "demo_plugin_no_install"):
            sys.modules.pop(name, None)


async def test_flowmesh_loader_stops_on_a_plugin_that_fails_its_gate(bad_plugins: str) -> None:
    async with AsyncExitStack() as stack:
        with pytest.raises(LoadError, match="not HookBindings"):
            await load_flowmesh(f" ,{bad_plugins}, ", stack)


async def test_lumilake_loader_logs_and_skips_failing_plugins(
    bad_plugins: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with AsyncExitStack() as stack:
        loaded, skipped = await load_lumilake(f"{bad_plugins},demo_plugin_no_install", stack)
    assert loaded == []
    assert skipped == [bad_plugins, "demo_plugin_no_install"]
    assert "demo_plugin_no_install failed to load; skipped" in caplog.text

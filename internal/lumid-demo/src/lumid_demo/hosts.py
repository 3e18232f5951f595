"""The FlowMesh and Lumilake plugin loaders, reproduced from the hosts' sources.

See docs/host-contracts.md ("Loading" under each host). This module is
self-contained (stdlib at import; hook packages imported when loading) so that it
also runs as a script, by path, inside a fresh venv that holds nothing but the
wheels under test:

    python -I hosts.py core                      # lumid_core imports alone
    python -I hosts.py flowmesh lumid_flowmesh_plugin
    python -I hosts.py lumilake lumid_lumilake_plugin

The script loads the plugins, prints what each contributed, shuts them down the
way the host's lifespan does, and exits 0 only when every gate passed.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HOST_FIELDS", "LoadError", "Loaded", "load_flowmesh", "load_lumilake", "main"]

log = logging.getLogger("lumid_demo.hosts")

SHARED_FIELDS = (
    "identity_providers",
    "submission_guards",
    "usage_sinks",
    "permission_checkers",
    "resource_registrars",
)
HOST_FIELDS = {"flowmesh": "supplier_resolvers", "lumilake": "optimizer_providers"}


class LoadError(RuntimeError):
    """A plugin did not pass the host's loading gates."""


@dataclass
class Loaded:
    """One plugin as the host sees it after loading."""

    module: str
    bindings: Any
    extra: Sequence[Any] = field(default_factory=tuple)
    """FlowMesh's `supplier_resolvers` or Lumilake's `optimizer_providers`, when the
    bindings pass the host's own `HookBindings` gate; empty otherwise."""


def _names(spec: str) -> list[str]:
    return [n.strip() for n in spec.split(",") if n.strip()]


async def _settle(rv: Any, stack: AsyncExitStack) -> Any:
    # Both hosts: an async context manager is entered on the lifespan's exit stack,
    # a coroutine is awaited, anything else is used as is.
    if hasattr(rv, "__aenter__"):
        return await stack.enter_async_context(rv)
    if inspect.isawaitable(rv):
        return await rv
    return rv


async def load_flowmesh(spec: str, stack: AsyncExitStack) -> list[Loaded]:
    """FLOWMESH_PLUGINS: `importlib.import_module(name).install()`; nothing is caught."""
    # By name, as the host does; the hook packages ship no type information.
    lumid_hooks = importlib.import_module("lumid_hooks")
    flowmesh_hook = importlib.import_module("flowmesh_hook")
    loaded: list[Loaded] = []
    for name in _names(spec):
        module = importlib.import_module(name)
        bindings = await _settle(module.install(), stack)
        if not isinstance(bindings, lumid_hooks.HookBindings):
            raise LoadError(f"{name}.install() returned {type(bindings)!r}, not HookBindings")
        extra: Sequence[Any] = ()
        if isinstance(bindings, flowmesh_hook.HookBindings):
            extra = tuple(bindings.supplier_resolvers)
        loaded.append(Loaded(name, bindings, extra))
    return loaded


async def load_lumilake(spec: str, stack: AsyncExitStack) -> tuple[list[Loaded], list[str]]:
    """LUMILAKE_PLUGINS: `__import__(name, fromlist=["install"])`,
    `module.__dict__.get("install")`; a failing plugin is logged and skipped.

    Returns the loaded plugins and the names of the skipped ones.
    """
    lumid_hooks = importlib.import_module("lumid_hooks")
    lumilake_hook = importlib.import_module("lumilake_hook")
    loaded: list[Loaded] = []
    skipped: list[str] = []
    for name in _names(spec):
        try:
            module = __import__(name, fromlist=["install"])
            install = module.__dict__.get("install")
            if install is None:
                raise LoadError(f"{name} has no install()")
            bindings = await _settle(install(), stack)
            if not isinstance(bindings, lumid_hooks.HookBindings):
                raise LoadError(f"{name}.install() returned {type(bindings)!r}, not HookBindings")
        except Exception:
            log.exception("plugin %s failed to load; skipped", name)
            skipped.append(name)
            continue
        extra: Sequence[Any] = ()
        if isinstance(bindings, lumilake_hook.HookBindings):
            extra = tuple(bindings.optimizer_providers)
        loaded.append(Loaded(name, bindings, extra))
    return loaded, skipped


def describe(host: str, plugin: Loaded) -> list[str]:
    """One line per bindings field: the `.name` of each hook it carries."""
    cls = type(plugin.bindings)
    lines = [f"{plugin.module}: {cls.__module__}.{cls.__qualname__}"]
    for fname in SHARED_FIELDS:
        hooks = list(getattr(plugin.bindings, fname))
        lines.append(f"  {fname}: {[getattr(h, 'name', type(h).__name__) for h in hooks]}")
    extra_name = HOST_FIELDS[host]
    lines.append(f"  {extra_name}: {[getattr(h, 'name', type(h).__name__) for h in plugin.extra]}")
    return lines


def _check_core() -> int:
    for absent in ("flowmesh_hook", "lumilake_hook"):
        if importlib.util.find_spec(absent) is not None:
            print(f"{absent} is installed; the core check needs a venv without it")
            return 1
    core = importlib.import_module("lumid_core")
    print(f"lumid_core {getattr(core, '__version__', '?')} imports without a host hook package")
    return 0


async def _check_host(host: str, spec: str) -> int:
    async with AsyncExitStack() as stack:
        if host == "flowmesh":
            loaded = await load_flowmesh(spec, stack)
            skipped: list[str] = []
        else:
            loaded, skipped = await load_lumilake(spec, stack)
        for plugin in loaded:
            print("\n".join(describe(host, plugin)))
        if skipped:
            print(f"skipped by the host: {', '.join(skipped)}")
            return 1
        if not loaded:
            print("no plugin named")
            return 1
    print(f"{spec}: loaded the {host} way and shut down cleanly")
    return 0


def main(argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if len(argv) == 1 and argv[0] == "core":
        return _check_core()
    if len(argv) == 2 and argv[0] in HOST_FIELDS:
        return asyncio.run(_check_host(argv[0], argv[1]))
    print("usage: hosts.py core | flowmesh NAMES | lumilake NAMES", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

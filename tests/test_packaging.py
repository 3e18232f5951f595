"""Each published wheel declares what it imports, and reports its metadata's version.

The sources of each published package are parsed (ast, nothing imported); every
top-level third-party module they import is mapped to its distribution with
`importlib.metadata.packages_distributions()` and must appear in that package's
Requires-Dist. A missing declaration only shows up when a host image happens to lack
the package, as a failed plugin load, so it is caught here.
"""

from __future__ import annotations

import ast
import importlib
import sys
import tomllib
from collections.abc import Iterable, Mapping
from importlib.metadata import packages_distributions, requires, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]

PUBLISHED = {
    "lumid-core": "lumid_core",
    "lumid-flowmesh-plugin": "lumid_flowmesh_plugin",
    "lumid-lumilake-plugin": "lumid_lumilake_plugin",
}
"""Distribution name -> its top-level module."""

RUNTIME_ONLY = {
    # httpcore imports sniffio on every request; declared so it is always present
    # (docs/performance.md), never imported by the core itself.
    "lumid-core": {"sniffio"},
}
"""Declared dependencies that are needed at run time without a direct import."""


def imported_modules(sources: Iterable[Path]) -> set[str]:
    """Top-level names of every absolute import (and literal `import_module("x")`)."""
    found: set[str] = set()
    for path in sources:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute | ast.Name)
                and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
                in ("import_module", "__import__")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value.split(".")[0])
    return found


def third_party_distributions(
    modules: Iterable[str], own_module: str, module_to_dists: Mapping[str, list[str]]
) -> dict[str, str]:
    """Distribution name -> the module that needs it, for every non-stdlib import.

    A module no installed distribution provides maps to itself (and then fails the
    comparison, which is what an undeclared or misspelt import deserves)."""
    first_party = {module: dist for dist, module in PUBLISHED.items()}
    needed: dict[str, str] = {}
    for module in sorted(modules):
        if module == own_module or module in sys.stdlib_module_names or module == "__future__":
            continue
        dists = module_to_dists.get(module) or [first_party.get(module, module)]
        for dist in dists:
            needed[str(canonicalize_name(dist))] = module
    return needed


def declared(dist: str) -> set[str]:
    """The unconditional Requires-Dist of an installed distribution (no extras)."""
    reqs = [Requirement(line) for line in requires(dist) or []]
    return {str(canonicalize_name(r.name)) for r in reqs if r.marker is None}


def sources_of(dist: str) -> list[Path]:
    module = PUBLISHED[dist]
    files = sorted((ROOT / "packages" / dist / "src" / module).rglob("*.py"))
    assert files, f"no sources for {dist}"
    return files


@pytest.mark.parametrize("dist", list(PUBLISHED))
def test_every_import_is_a_declared_dependency(dist: str) -> None:
    needed = third_party_distributions(
        imported_modules(sources_of(dist)), PUBLISHED[dist], packages_distributions()
    )
    undeclared = {d: m for d, m in needed.items() if d not in declared(dist)}
    assert undeclared == {}, f"{dist} imports these without declaring them: {undeclared}"


@pytest.mark.parametrize("dist", list(PUBLISHED))
def test_every_declared_dependency_is_imported(dist: str) -> None:
    needed = third_party_distributions(
        imported_modules(sources_of(dist)), PUBLISHED[dist], packages_distributions()
    )
    unused = declared(dist) - set(needed) - RUNTIME_ONLY.get(dist, set())
    assert unused == set(), f"{dist} declares dependencies it never imports: {unused}"


def test_the_comparison_catches_an_undeclared_import(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from __future__ import annotations\nimport json\nfrom . import sibling\n"
        "import lumid_core.store\nfrom fastapi import HTTPException\n"
        "import importlib\nimportlib.import_module('pydantic_settings')\n"
    )
    needed = third_party_distributions(
        imported_modules([source]),
        "lumid_flowmesh_plugin",
        {"fastapi": ["fastapi"], "pydantic_settings": ["pydantic-settings"]},
    )
    assert needed == {
        "fastapi": "fastapi",
        "lumid-core": "lumid_core",
        "pydantic-settings": "pydantic_settings",
    }


@pytest.mark.parametrize("dist", list(PUBLISHED))
def test_version_attribute_is_the_distribution_metadata(dist: str) -> None:
    module = importlib.import_module(PUBLISHED[dist])
    assert module.__version__ == version(dist)
    pyproject = tomllib.loads((ROOT / "packages" / dist / "pyproject.toml").read_text())
    assert module.__version__ == pyproject["project"]["version"]

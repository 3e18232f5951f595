"""The release tests: slow (they build, install into fresh venvs and run an index)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dist: builds the wheels, installs them into fresh venvs, runs a local index "
        "(slow; part of `make test`; select with -m dist, skip with -m 'not dist')",
    )

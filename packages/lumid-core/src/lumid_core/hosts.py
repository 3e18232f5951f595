"""Which host plugins exist and which are installed here, without importing any of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["DOCTOR_GROUP", "KNOWN_HOSTS", "installed_hosts"]

DOCTOR_GROUP: Final = "lumid.doctor"
"""Entry-point group: name = host, value = an object satisfying `HostDoctor`."""

KNOWN_HOSTS: Final[Mapping[str, str]] = {
    "flowmesh": "lumid-flowmesh-plugin",
    "lumilake": "lumid-lumilake-plugin",
}
"""Host name -> the wheel that provides its plugin (and its doctor checks)."""


def installed_hosts() -> dict[str, str]:
    """Host name -> entry-point value for every installed host doctor."""
    from importlib.metadata import entry_points  # slow to import: only when asked

    return {ep.name: ep.value for ep in entry_points(group=DOCTOR_GROUP)}

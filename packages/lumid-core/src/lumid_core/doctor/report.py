"""The doctor's report model, the `HostDoctor` protocol and the loading of a host's doctor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from lumid_hooks import PrincipalContext

from lumid_core.errors import LumidError
from lumid_core.hosts import DOCTOR_GROUP, KNOWN_HOSTS
from lumid_core.permissions import Policy
from lumid_core.settings import LumidSettings

if TYPE_CHECKING:
    from .context import DoctorContext

__all__ = [
    "Check",
    "HostDoctor",
    "HostNotInstalledError",
    "Introspection",
    "Status",
    "load_host_doctor",
]


class Status(StrEnum):
    """How a check came out: OK, WARN (works, likely a mistake) or FAIL (exit 1)."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the doctor's report."""

    name: str
    status: Status
    detail: str
    env_var: str | None = None
    """The environment variable at fault (or checked), when there is one."""

    def as_json(self) -> dict[str, str | None]:
        """The line as `lumid doctor --json` prints it."""
        return {
            "check": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "env_var": self.env_var,
        }


@dataclass(frozen=True, slots=True)
class Introspection:
    """What lum.id said about one token: a principal, inactive (with reason), or an error."""

    principal: PrincipalContext | None = None
    inactive_reason: str | None = None
    error: str | None = None

    @property
    def active(self) -> bool:
        """Whether lum.id vouched for the token."""
        return self.principal is not None


@runtime_checkable
class HostDoctor(Protocol):
    """What a host plugin registers under the `lumid.doctor` entry-point group."""

    @property
    def host(self) -> str:
        """The host's name, equal to the entry-point name."""
        ...

    @property
    def settings_class(self) -> type[LumidSettings]:
        """The settings class the plugin's `install()` loads."""
        ...

    @property
    def policy(self) -> Policy:
        """The host's authorization policy (`lumid acl grant` checks kinds against it)."""
        ...

    async def checks(self, ctx: DoctorContext) -> Sequence[Check]:
        """The host-specific checks; `ctx.settings` is an instance of `settings_class`."""
        ...


class HostNotInstalledError(LumidError, LookupError):
    """No plugin for the host is installed; the message names the wheel to install."""


def load_host_doctor(host: str) -> HostDoctor:
    """Load the host's doctor from its entry point.

    Raises `HostNotInstalledError` naming the wheel when the plugin is not installed,
    and `TypeError` when the entry point is not a `HostDoctor`.
    """
    found = [ep for ep in entry_points(group=DOCTOR_GROUP) if ep.name == host]
    if not found:
        wheel = KNOWN_HOSTS.get(host, f"lumid-{host}-plugin")
        raise HostNotInstalledError(
            f"the {host} plugin is not installed here: install the {wheel} wheel "
            f"(pip install {wheel}) into this environment"
        )
    doctor = found[0].load()
    if not isinstance(doctor, HostDoctor):
        raise TypeError(
            f"entry point {found[0].value!r} in group {DOCTOR_GROUP!r} is not a HostDoctor"
        )
    return doctor

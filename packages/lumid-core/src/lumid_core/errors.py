"""The one exception tree of the lum.id plugins: every error they raise on purpose.

```
LumidError
├── ConfigError        (also a ValueError) a setting or input is wrong: (variable, reason) data
│   └── SettingsError  the environment failed validation (lumid_core.settings)
├── StoreError         (also a RuntimeError) the grant / principal / outbox store cannot be used
│   └── DatabaseError  the SQLite database at LUMID_ACL_DB_PATH (lumid_core.db)
├── UpstreamError      (also a RuntimeError) an upstream exchange gave no usable reply
│                      (lumid_core.http; lum.id introspection, Runmesh, the optimizer build on it)
└── CliError           a `lumid` command failed (lumid_core.cli, exit status 1)
    └── UsageError     a usage mistake found only when the command runs (exit status 2)
```

Catch `LumidError` to handle anything the plugins raise deliberately; anything else
is a bug. Configuration errors carry their problems as data (`ConfigError.problems`),
so the CLI and the doctors print them without parsing messages. No message ever
holds a secret.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ConfigError", "LumidError", "Problem", "StoreError", "UpstreamError"]


class LumidError(Exception):
    """Root of every error the lum.id plugins raise on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration problem: the variable (or input) at fault and why."""

    variable: str
    reason: str

    def __str__(self) -> str:
        """`VARIABLE: reason`, the form every message and CLI line uses."""
        return f"{self.variable}: {self.reason}" if self.variable else self.reason


class ConfigError(LumidError, ValueError):
    """A configuration value or an operator's input is missing or invalid.

    `problems` lists every (variable, reason) at fault; the message joins them.
    """

    summary = "invalid configuration"

    def __init__(self, problems: Problem | Iterable[Problem]) -> None:
        """Build the error from one problem or several (at least one)."""
        items = (problems,) if isinstance(problems, Problem) else tuple(problems)
        if not items:
            items = (Problem("", "invalid value"),)
        self.problems: tuple[Problem, ...] = items
        super().__init__(f"{self.summary}: " + "; ".join(str(p) for p in items))

    @property
    def variable(self) -> str:
        """The first variable at fault."""
        return self.problems[0].variable

    @property
    def variables(self) -> frozenset[str]:
        """Every variable at fault."""
        return frozenset(p.variable for p in self.problems if p.variable)


class StoreError(LumidError, RuntimeError):
    """A store (grants, principals, outbox) cannot be opened or used.

    The message names the variable that selects the store; `variable` holds it.
    """

    variable: str = ""


class UpstreamError(LumidError, RuntimeError):
    """An upstream exchange (lum.id, Runmesh, a remote optimizer) gave no usable reply."""

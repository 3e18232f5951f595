"""The two ways a `lumid` command fails on purpose: an operation error or a late usage error."""

from __future__ import annotations

from lumid_core.errors import LumidError

__all__ = ["CliError", "UsageError"]


class CliError(LumidError):
    """An operation failed: printed as `lumid: error: ...`, exit status 1."""


class UsageError(CliError):
    """A usage mistake found only when the command runs: exit status 2, like argparse's."""

"""`lumid billing`: the argparse wiring of the durable usage outbox's status, ls and retry.

Every sink that has ever queued a row is shown unless `--sink` picks one. Retrying
moves dead letters back to pending; the server's delivery task sends them (the
bridge is idempotent on the key, so a replay never charges twice).
"""

from __future__ import annotations

import argparse
from typing import Final

from . import _billing_commands as commands
from ._database import add_db_option
from ._validate import identifier, limit
from ._wiring import add_command, add_group

__all__ = ["STATES", "add_parser"]

STATES: Final = ("pending", "held", "delivered", "dead")
"""`lumid_core.outbox.STATES`, spelled out so `--help` needs no database layer."""

_HELP = "inspect and replay the billing outbox"
_DESCRIPTION = (
    "Usage rows wait in a durable outbox in the ACL database until the billing bridge "
    "accepts them. Safe to use while the server runs."
)


def _shared_options(p: argparse.ArgumentParser) -> None:
    """The options every billing command takes: `--db` and `--sink`."""
    add_db_option(p)
    p.add_argument("--sink", type=identifier, help="only this outbox sink (default: every sink)")


def _status_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON document")


def _ls_options(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument("--dead", action="store_true", help="dead letters only")
    which.add_argument("--state", choices=STATES, help="rows in this state only")
    p.add_argument("--limit", type=limit, default=100, help="at most this many (100)")
    p.add_argument("--json", action="store_true", help="JSON lines, with the payloads")


def _retry_options(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--task", metavar="ID", type=identifier, help="the dead letter with this key (a task id)"
    )
    what.add_argument("--all-dead", action="store_true", help="every dead letter")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `lumid billing` and its commands to the top-level subparsers `sub`."""
    cmds = add_group(sub, "billing", help=_HELP, description=_DESCRIPTION)
    add_command(
        cmds,
        "status",
        commands.status,
        help="counts per state and the oldest pending age",
        arguments=(_status_options, _shared_options),
    )
    add_command(
        cmds,
        "ls",
        commands.ls,
        help="list outbox rows (oldest first)",
        arguments=(_ls_options, _shared_options),
    )
    add_command(
        cmds,
        "retry",
        commands.retry,
        help="send dead letters again",
        arguments=(_retry_options, _shared_options),
    )

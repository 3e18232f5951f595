"""`lumid acl`: the argparse wiring of list, grant, revoke, export and import.

Safe while a server uses the same file: `ls` and `export` open it read-only (no
lock, no migration: they work on a read-only copy too), every write is a short
IMMEDIATE transaction under a busy timeout (an import commits in small batches,
each rolled back and retried smaller if it holds the lock past a deadline), and the
server reads grants from the file on every check (no grant cache), so a change is
in force as soon as the command returns.
"""

from __future__ import annotations

import argparse

from . import _acl_commands as commands
from ._acl_import import run_import
from ._database import add_db_option
from ._grant_lines import LEVELS
from ._validate import identifier, resource_id
from ._wiring import add_command, add_group

__all__ = ["add_parser"]

_HELP = "look at and change grants in the ACL database"
_DESCRIPTION = (
    "Grants say which principal (a lum.id `sub`) may read or write one resource. "
    "Safe to use while the server runs on the same database."
)


def _filters(p: argparse.ArgumentParser) -> None:
    """The options that narrow `ls` and `export`, each optional."""
    who = p.add_mutually_exclusive_group()
    who.add_argument("--principal", type=identifier, help="only this principal (a lum.id sub)")
    who.add_argument("--email", type=identifier, help="only the principal with this email")
    p.add_argument("--kind", type=identifier, help="only this resource kind (workflow, job, ...)")
    p.add_argument("--id", type=resource_id, help="only this resource id (exactly)")


def _target(p: argparse.ArgumentParser) -> None:
    """The options naming the one grant `grant` and `revoke` change, all required."""
    p.add_argument(
        "--kind", type=identifier, required=True, help="resource kind (workflow, job, ...)"
    )
    p.add_argument("--id", type=resource_id, required=True, help="resource id (taken exactly)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--principal", type=identifier, help="a lum.id sub")
    who.add_argument(
        "--email",
        type=identifier,
        help="the principal with this email (known once they have used this server)",
    )


def _grant_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--level", choices=LEVELS, required=True)
    p.add_argument(
        "--any-kind",
        action="store_true",
        help="grant even if no installed plugin uses --kind (default: refuse, it is a typo)",
    )


def _import_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "file", nargs="?", default="-", help="a JSON-lines file, or - for standard input (default)"
    )
    p.add_argument(
        "--any-kind",
        action="store_true",
        help="import kinds no installed plugin uses (default: refuse the file, it is a typo)",
    )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `lumid acl` and its commands to the top-level subparsers `sub`."""
    cmds = add_group(sub, "acl", help=_HELP, description=_DESCRIPTION)
    add_command(
        cmds, "ls", commands.ls, help="list grants (a table)", arguments=(_filters, add_db_option)
    )
    add_command(
        cmds,
        "grant",
        commands.grant,
        help="give a principal read or write on one resource",
        arguments=(_target, _grant_options, add_db_option),
    )
    add_command(
        cmds,
        "revoke",
        commands.revoke,
        help="remove a principal's grant on one resource",
        arguments=(_target, add_db_option),
    )
    add_command(
        cmds,
        "export",
        commands.export,
        help="write grants as JSON lines to standard output",
        arguments=(_filters, add_db_option),
    )
    add_command(
        cmds,
        "import",
        run_import,
        help="add grants from JSON lines (as `export` writes them); all lines are "
        "validated before any is written",
        arguments=(_import_options, add_db_option),
    )

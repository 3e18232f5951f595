"""The argparse building blocks of every `lumid` command group: the group and its commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

__all__ = ["Arguments", "Run", "add_command", "add_group"]

type Run = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
"""What a command does once its arguments are parsed; returns the exit status."""

type Arguments = Callable[[argparse.ArgumentParser], object]
"""Adds some of a command's arguments to its parser."""


def add_group(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    description: str,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add the command group `lumid NAME` to `sub`; returns the group's subparsers.

    The chosen command's name lands in `NAME_command` of the parsed arguments.
    """
    group = sub.add_parser(name, help=help, description=description)
    return group.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def add_command(
    cmds: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    run: Run,
    *,
    help: str,
    arguments: Iterable[Arguments],
) -> None:
    """Add the command `name`, which `run` runs, to a group's subparsers `cmds`.

    Each of `arguments` adds its options in turn (that order is `--help`'s).
    """
    parser = cmds.add_parser(name, help=help)
    for add in arguments:
        add(parser)
    parser.set_defaults(run=run)

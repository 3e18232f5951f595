"""`lumid`: the operator's command line (doctor, acl, billing). Stdlib argparse only.

Exit status: 0 success, 1 a FAIL or a failed operation, 2 a usage error, 130 on
Ctrl-C. An unexpected error prints one line naming the command and the error
(the traceback only with `--debug`). Each command imports what it needs when it
runs, so `lumid --help` starts without pydantic, httpx or fastapi.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from . import acl, billing, db, doctor
from ._errors import CliError, UsageError
from ._output import printable

__all__ = ["build_parser", "main"]


class _Version(argparse.Action):
    """`--version`, reading the installed version only when asked.

    importlib.metadata is slow to import, and every other command would pay for it.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        import lumid_core

        print(f"lumid-core {lumid_core.__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The `lumid` parser: global options and every command's subparser."""
    parser = argparse.ArgumentParser(
        prog="lumid",
        description="Operate the lum.id host plugins: check a server's configuration, "
        "share resources, inspect billing.",
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an unexpected error"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    doctor.add_parser(sub)
    acl.add_parser(sub)
    billing.add_parser(sub)
    db.add_parser(sub)
    return parser


def _command(args: argparse.Namespace) -> str:
    words = ["lumid", str(args.command)]
    for attr in ("acl_command", "billing_command"):
        value = getattr(args, attr, None)
        if value:
            words.append(str(value))
    return " ".join(words)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run `lumid` with `argv` (default: the process's arguments); returns the exit status."""
    args = build_parser().parse_args(argv)
    import asyncio  # after parsing: `--help` and usage errors never need it

    run: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.run
    command = _command(args)
    try:
        code = asyncio.run(run(args))
        sys.stdout.flush()  # a full disk or a closed pipe shows here, not at exit
        return code
    except CliError as exc:
        print(f"lumid: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lumid acl export | head`
        _quiet_stdout()
        return 0
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EIO, errno.EPIPE, errno.EBADF):
            _quiet_stdout()
            reason = exc.strerror or os.strerror(exc.errno or 0)
            print(f"lumid: error: {command}: cannot write the output ({reason})", file=sys.stderr)
            return 1
        return _unexpected(command, exc, args.debug)
    except Exception as exc:
        return _unexpected(command, exc, args.debug)


def _unexpected(command: str, exc: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exception(exc)
    detail = printable(str(exc))[:500]
    print(
        f"lumid: error: {command} failed unexpectedly: {type(exc).__name__}"
        + (f": {detail}" if detail else "")
        + ("" if debug else " (rerun with --debug for the traceback)"),
        file=sys.stderr,
    )
    return 1

"""`lumid`: the operator's command line (doctor, acl, billing). Stdlib argparse only.

Exit status: 0 success, 1 a FAIL or a failed operation, 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from lumid_core import __version__

from . import acl, billing, db, doctor
from ._common import CliError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lumid",
        description="Operate the lum.id host plugins: check a server's configuration, "
        "share resources, inspect billing.",
    )
    parser.add_argument("--version", action="version", version=f"lumid-core {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    doctor.add_parser(sub)
    acl.add_parser(sub)
    billing.add_parser(sub)
    db.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.run
    try:
        return asyncio.run(run(args))
    except CliError as exc:
        print(f"lumid: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `lumid acl export | head`
        return 0

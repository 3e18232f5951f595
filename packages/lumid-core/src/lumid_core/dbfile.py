"""Which file a database path names: (device, inode), and the records servers keep.

A server records the identity of the file it opened in `<db>.servers/<host>-<pid>.json`
so that `lumid doctor`, in another process, can tell when the path no longer names it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path
from typing import Final

__all__ = ["SERVERS_SUFFIX", "FileIdentity", "file_identity", "servers_dir", "write_server_record"]

log = logging.getLogger("lumid_core.db")

SERVERS_SUFFIX: Final = ".servers"
"""`<db>.servers/<host>-<pid>.json`: the file identity each running server opened."""

FileIdentity = tuple[int, int]
"""(st_dev, st_ino) of a database file."""


def file_identity(path: Path) -> FileIdentity | None:
    """The (device, inode) of the file at `path` now, or None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def servers_dir(path: Path) -> Path:
    """Where running servers record the identity of the file they opened at `path`."""
    return path.with_name(path.name + SERVERS_SUFFIX)


def write_server_record(
    path: Path, identity: FileIdentity, opened_at: float, env_var: str
) -> Path | None:
    """Record, for `lumid doctor`, that this process opened the file `identity` at `path`.

    Returns the record's path (the caller removes it at close), or None if it cannot
    be written.
    """
    folder = servers_dir(path)
    record = folder / f"{socket.gethostname()}-{os.getpid()}.json"
    doc = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "dev": identity[0],
        "ino": identity[1],
        "opened_at": opened_at,
    }
    try:
        folder.mkdir(exist_ok=True)
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        tmp.replace(record)
    except OSError as exc:
        log.warning(
            "%s=%r: cannot record the opened file for `lumid doctor` in %s (%s)",
            env_var,
            str(path),
            folder,
            exc.strerror or exc,
        )
        return None
    return record

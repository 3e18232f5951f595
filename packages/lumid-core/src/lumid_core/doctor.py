"""`lumid doctor`: the checks an operator runs before starting a server.

The core runs the checks every host shares (settings, the ACL database, lum.id);
each host plugin adds its own through the `lumid.doctor` entry-point group, named
after the host (`flowmesh`, `lumilake`) and pointing at an object that satisfies
`HostDoctor`. The core never imports a plugin: it only loads that entry point.

A check never puts a secret in its detail; it names the environment variable at
fault instead.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import httpx
from lumid_hooks import PrincipalContext

from . import legacy
from .db import SCHEMA_VERSION, Database, DatabaseError
from .dbfile import file_identity, servers_dir
from .dbreadonly import ReadOnlyDatabase
from .errors import LumidError
from .hosts import DOCTOR_GROUP, KNOWN_HOSTS, installed_hosts
from .introspection import Failure, IntrospectionError, introspect
from .permissions import Policy
from .settings import LumidSettings

if TYPE_CHECKING:
    from .pg import PgDatabase

__all__ = [
    "DOCTOR_GROUP",
    "KNOWN_HOSTS",
    "Check",
    "DoctorContext",
    "HostDoctor",
    "HostNotInstalledError",
    "Introspection",
    "Status",
    "check_database",
    "check_database_identity",
    "check_lumid",
    "check_plugins_listed",
    "check_upgrade",
    "installed_hosts",
    "load_host_doctor",
    "redact_url",
]


class Status(StrEnum):
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
        return self.principal is not None


def redact_url(url: str) -> str:
    """`url` without any user:password part, query or fragment (URLs are printed;
    credentials never, and a query or fragment may hold a key)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc and not parts.query and not parts.fragment:
        return url
    host = parts.netloc.rsplit("@", 1)[1] if "@" in parts.netloc else parts.netloc
    netloc = "***@" + host if "@" in parts.netloc else host
    query = "***" if parts.query else ""
    fragment = "***" if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def check_plugins_listed(
    environ: Mapping[str, str], variable: str, module: str, host: str
) -> Check | None:
    """Whether the host's plugin list `variable` (e.g. FLOWMESH_PLUGINS) loads `module`.

    Nothing to say when it is unset: the doctor may run outside the server's
    environment. A list without the module is a FAIL: the server would run without
    lum.id identity and authorization.
    """
    raw = environ.get(variable)
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if module in names:
        return Check("plugins", Status.OK, f"{variable} loads {module}", variable)
    return Check(
        "plugins",
        Status.FAIL,
        f"{variable}={raw.strip()!r} does not list {module} (the module's name, not "
        f"the wheel's): {host} would run without lum.id identity and authorization",
        variable,
    )


@dataclass
class DoctorContext:
    """What a host's checks get: validated settings and the core's open resources."""

    settings: LumidSettings
    http: httpx.AsyncClient
    environ: Mapping[str, str]
    db: Database | PgDatabase | None = None
    """The open store (SQLite, or PostgreSQL under LUMID_DATABASE_URL); None when the
    database check failed or there is no database file yet."""
    db_not_created: bool = False
    """True when there is no database file yet and the server could create it."""
    lumid_ok: bool = False
    """True when lum.id answered the dummy introspection correctly."""

    async def introspect(self, token: str) -> Introspection:
        """Ask lum.id about `token` as the identity provider does; never raises, never logs it."""
        settings = self.settings
        try:
            verdict = await introspect(
                self.http,
                settings.introspect_url,
                token,
                org_id=settings.lumid_org_id,
                deadline=settings.lumid_introspect_timeout_seconds,
                max_bytes=settings.lumid_max_reply_bytes,
            )
        except IntrospectionError as exc:
            return Introspection(error=_phrase(exc, settings))
        except Exception as exc:  # the doctor reports, it never tracebacks
            return Introspection(error=f"failed unexpectedly ({type(exc).__name__})")
        if verdict.principal is None:
            return Introspection(inactive_reason=verdict.reason)
        return Introspection(principal=verdict.principal)


def _phrase(exc: IntrospectionError, settings: LumidSettings) -> str:
    """The doctor's wording of an introspection failure."""
    match exc.failure:
        case Failure.TIMEOUT:
            timeout = settings.lumid_introspect_timeout_seconds
            return f"no reply within {timeout:g}s (LUMID_INTROSPECT_TIMEOUT_SECONDS)"
        case Failure.UNREACHABLE:
            return f"cannot reach it ({exc})"
        case Failure.STATUS:
            return f"answered {exc}, expected 200"
        case Failure.TOO_LARGE:
            return f"sent a reply too large to read: {exc} (LUMID_MAX_REPLY_BYTES)"
        case Failure.NOT_JSON:
            return f"answered 200 with a body that is not JSON ({exc})"
        case Failure.SHAPE:
            return f"answered 200 with an unexpected shape ({exc})"


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


# -- the checks every host shares ---------------------------------------------------


def _creatable(path: Path, env_var: str) -> Check:
    """Whether the server could create the database at `path` (nothing is created)."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    where = f"{env_var}={str(path)!r}"
    if not folder.is_dir():
        return Check(
            "database",
            Status.FAIL,
            f"{where}: cannot create its folder ({folder} is a file)",
            env_var,
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        return Check(
            "database",
            Status.FAIL,
            f"{where}: cannot create its folder or file ({folder} is not writable)",
            env_var,
        )
    return Check(
        "database",
        Status.OK,
        f"{path}: not there yet; the server creates it (schema v{SCHEMA_VERSION}) on its "
        "first start",
        env_var,
    )


async def check_database(
    path: Path, *, env_var: str = "LUMID_ACL_DB_PATH"
) -> tuple[Check, Database | None]:
    """Check the ACL database without changing it: opened read-only (no file created,
    no migration, no WAL switch, no lock a running server would wait for).

    Returns the read-only database for the other checks, or None when there is none.
    """
    path = path.expanduser()
    if not path.exists():
        if (gone := check_database_identity(path, env_var=env_var)) is not None:
            return gone, None  # deleted under a running server: not "not there yet"
        return _creatable(path, env_var), None
    try:
        db = await ReadOnlyDatabase.open_read_only(path, env_var=env_var, legacy_ok=True)
    except DatabaseError as exc:
        if (replaced := check_database_identity(path, env_var=env_var)) is not None:
            # e.g. "disk I/O error": the new file beside the old file's -wal / -shm
            detail = f"{replaced.detail}; opening it here fails too ({exc})"
            return Check("database", Status.FAIL, detail, env_var), None
        return Check("database", Status.FAIL, str(exc), env_var), None
    if (replaced := check_database_identity(path, env_var=env_var)) is not None:
        return replaced, db
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
        detail = f"{env_var}={str(path)!r}: readable but not writable (the server writes it)"
        return Check("database", Status.FAIL, detail, env_var), db
    if db.schema_version < SCHEMA_VERSION:
        detail = (
            f"{path}: writable, schema v{db.schema_version}; the server migrates it to "
            f"v{SCHEMA_VERSION} on its next start"
        )
    else:
        detail = f"{path}: writable, schema v{SCHEMA_VERSION} (current)"
    return Check("database", Status.OK, detail, env_var), db


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def check_database_identity(path: Path, *, env_var: str = "LUMID_ACL_DB_PATH") -> Check | None:
    """FAIL (or WARN) when a running server opened a file that `path` no longer names.

    Every server records the (device, inode) of the file it opened in
    `<db>.servers/<host>-<pid>.json` and removes the record when it stops. A record
    of a live process on this host whose identity differs from the file at `path`
    now means that server serves from a deleted or replaced file: FAIL. A record
    from another host cannot be checked for liveness: WARN. Records of dead
    processes on this host are stale (a crash) and ignored. None when all is well.
    """
    folder = servers_dir(path)
    try:
        records = sorted(folder.glob("*.json"))
    except OSError:
        return None
    now = file_identity(path)
    here = socket.gethostname()
    problems: list[tuple[Status, str]] = []
    for record in records:
        try:
            doc = json.loads(record.read_text(encoding="utf-8"))
            pid, host = int(doc["pid"]), str(doc["host"])
            opened = (int(doc["dev"]), int(doc["ino"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if opened == now:
            continue
        if host == here and not _alive(pid):
            continue  # a server that crashed without removing its record
        status = Status.FAIL if host == here else Status.WARN
        problems.append(
            (
                status,
                f"server pid {pid} on {host!r} opened a database file that {env_var}="
                f"{str(path)!r} no longer names (deleted or replaced since it started): it "
                "still grants and bills from the old file, which `lumid` commands do not "
                "see; restore the file or restart that server",
            )
        )
    if not problems:
        return None
    worst = Status.FAIL if any(s is Status.FAIL for s, _ in problems) else Status.WARN
    return Check("database", worst, "; ".join(d for _, d in problems), env_var)


async def check_lumid(ctx: DoctorContext) -> Check:
    """Introspect a dummy token: lum.id must answer 200 with `active: false` in time."""
    url = redact_url(ctx.settings.lum_id_base_url)
    dummy = "lumid-doctor-" + secrets.token_hex(16)
    started = time.perf_counter()
    seen = await ctx.introspect(dummy)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if seen.error is not None:
        return Check(
            "lum.id", Status.FAIL, f"LUM_ID_BASE_URL={url}: {seen.error}", "LUM_ID_BASE_URL"
        )
    if seen.active:
        return Check(
            "lum.id",
            Status.FAIL,
            f"LUM_ID_BASE_URL={url}: a random dummy token came back active; "
            "this is not lum.id's introspection endpoint",
            "LUM_ID_BASE_URL",
        )
    ctx.lumid_ok = True
    return Check(
        "lum.id",
        Status.OK,
        f"{url}/oauth/introspect answered active=false for a dummy token "
        f"in {elapsed_ms:.0f} ms (timeout {ctx.settings.lumid_introspect_timeout_seconds:g}s)",
        "LUM_ID_BASE_URL",
    )


def check_upgrade(path: Path, *, env_var: str = "LUMID_ACL_DB_PATH") -> Check | None:
    """What the file holds of lumid-plugins 0.2.x (read only); None when nothing.

    An unmigrated `acl_grants` is a WARN with its row count (the server migrates it
    at its next start) or a FAIL naming the first row that would stop that start;
    a past migration is an OK saying when, how many grants and where the old table is.
    """
    path = path.expanduser()
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None  # the database check already says why
    try:
        state = legacy.status(conn)
        if state.pending_rows is not None:
            try:
                for _ in legacy.read_rows(conn):
                    pass
            except legacy.LegacyDataError as exc:
                return Check(
                    "upgrade",
                    Status.FAIL,
                    f"{env_var}={str(path)!r}: the lumid-plugins 0.2.x table "
                    f"{legacy.LEGACY_TABLE} cannot be migrated: {exc} (docs/upgrading.md)",
                    env_var,
                )
            return Check(
                "upgrade",
                Status.WARN,
                f"{path}: unmigrated lumid-plugins {state.pending_layout} table "
                f"{legacy.LEGACY_TABLE} holds {state.pending_rows} grants; they are not in "
                "force until the server (or a writing lumid command) opens the file and "
                "migrates them",
                env_var,
            )
        if not state.migrations:
            return None
        parts = []
        for m in state.migrations:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m.migrated_at))
            kept = (
                f"old table kept as {m.archived_as}"
                if m.archive_present
                else f"old table {m.archived_as} since dropped"
            )
            parts.append(
                f"{m.rows} grants migrated from lumid-plugins {m.layout} at {when} "
                f"({m.added} new; {kept})"
            )
        return Check("upgrade", Status.OK, "; ".join(parts), env_var)
    except sqlite3.Error:
        return None  # unreadable: the database check reports it
    finally:
        conn.close()

"""`lumid doctor --host H`: is this environment ready for the H plugin?"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from lumid_core.doctor import (
    KNOWN_HOSTS,
    Check,
    DoctorContext,
    HostNotInstalledError,
    Status,
    check_database,
    check_lumid,
    check_upgrade,
    installed_hosts,
    load_host_doctor,
)
from lumid_core.identity import make_http_client
from lumid_core.settings import LumidSettings, SettingsError, load_settings

from ._common import emit_json

if TYPE_CHECKING:
    from lumid_core.db import Database
    from lumid_core.pg import PgDatabase

__all__ = ["add_parser", "run_checks"]

_PROBLEM = re.compile(r"(?:^|; )([A-Z][A-Z0-9_]*): ")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hosts = sorted(set(KNOWN_HOSTS) | set(installed_hosts()))
    doctor = sub.add_parser(
        "doctor",
        help="check the configuration before starting a server",
        description="Validate the environment with the plugin's own settings code, the "
        "ACL database, lum.id and (per host) billing, the optimizer and the API key. "
        "One line per check; exits 1 on any FAIL. Never prints a secret.",
    )
    doctor.add_argument("--host", required=True, choices=hosts, help="the server this is for")
    doctor.add_argument("--json", action="store_true", help="one JSON document")
    doctor.set_defaults(run=_doctor)


def _settings_failures(exc: SettingsError) -> list[Check]:
    message = str(exc).removeprefix("invalid lum.id plugin configuration: ")
    starts = list(_PROBLEM.finditer(message))
    if not starts:
        return [Check("settings", Status.FAIL, message)]
    checks: list[Check] = []
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(message)
        text = message[match.start() : end].removeprefix("; ")
        checks.append(Check("settings", Status.FAIL, text, match.group(1)))
    return checks


def _wheel_version(wheel: str) -> str:
    try:
        return version(wheel)
    except PackageNotFoundError:
        return "?"


async def run_checks(host: str, environ: Mapping[str, str] = os.environ) -> list[Check]:
    """Every check for `host`, in order; later checks skip what earlier ones ruled out."""
    try:
        host_doctor = load_host_doctor(host)
    except HostNotInstalledError as exc:
        return [Check("plugin", Status.FAIL, str(exc))]
    except Exception as exc:
        return [Check("plugin", Status.FAIL, f"the {host} plugin failed to load: {exc}")]
    wheel = KNOWN_HOSTS.get(host, f"lumid-{host}-plugin")
    checks = [Check("plugin", Status.OK, f"{wheel} {_wheel_version(wheel)} installed")]

    settings: LumidSettings
    host_settings_ok = True
    try:
        settings = load_settings(host_doctor.settings_class)
    except SettingsError as exc:
        checks += _settings_failures(exc)
        host_settings_ok = False
        try:  # the shared part may still be fine: check what it allows
            settings = load_settings(LumidSettings)
        except SettingsError:
            return checks
    else:
        checks.append(
            Check(
                "settings",
                Status.OK,
                f"{host_doctor.settings_class.__name__} valid (org {settings.lumid_org_id})",
            )
        )

    db: Database | PgDatabase | None
    if settings.database_url is not None:  # the shared PostgreSQL store (docs/scaling.md)
        from lumid_core.pg.doctor import check_postgres

        db_check, db = await check_postgres(settings)
    else:
        db_check, db = await check_database(settings.lumid_acl_db_path)
    checks.append(db_check)
    if (upgrade := check_upgrade(settings.lumid_acl_db_path)) is not None:
        checks.append(upgrade)
    http = make_http_client(settings)
    try:
        ctx = DoctorContext(settings=settings, http=http, environ=environ, db=db)
        checks.append(await check_lumid(ctx))
        if host_settings_ok:
            try:
                checks += await host_doctor.checks(ctx)
            except Exception as exc:
                checks.append(
                    Check(host, Status.FAIL, f"the {host} checks crashed: {type(exc).__name__}")
                )
    finally:
        await http.aclose()
        if db is not None:
            await db.close()
    return checks


async def _doctor(args: argparse.Namespace) -> int:
    checks = await run_checks(args.host)
    failed = any(c.status is Status.FAIL for c in checks)
    if args.json:
        emit_json({"host": args.host, "ok": not failed, "checks": [c.as_json() for c in checks]})
        return 1 if failed else 0
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{c.status.value:<4}  {c.name:<{width}}  {c.detail}")
    counts = {s: sum(1 for c in checks if c.status is s) for s in Status}
    print(
        f"{args.host}: {counts[Status.FAIL]} FAIL, {counts[Status.WARN]} WARN, "
        f"{counts[Status.OK]} OK"
    )
    return 1 if failed else 0

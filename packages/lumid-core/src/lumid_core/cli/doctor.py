"""`lumid doctor --host H`: is this environment ready for the H plugin?"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from lumid_core.hosts import KNOWN_HOSTS, installed_hosts

from ._errors import UsageError
from ._output import emit_json, printable

if TYPE_CHECKING:
    from lumid_core.doctor import Check

__all__ = ["add_parser", "run_checks"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `lumid doctor` to the top-level subparsers `sub`."""
    doctor = sub.add_parser(
        "doctor",
        help="check the configuration before starting a server",
        description="Validate the environment with the plugin's own settings code, the "
        "ACL database, lum.id and (per host) billing, the optimizer and the API key. "
        "One line per check; exits 1 on any FAIL. Never prints a secret.",
    )
    doctor.add_argument(
        "--host",
        required=True,
        metavar="{" + ",".join(sorted(KNOWN_HOSTS)) + "}",
        help="the server this is for (or another installed host plugin's name)",
    )
    doctor.add_argument("--json", action="store_true", help="one JSON document")
    doctor.set_defaults(run=_doctor)


def _wheel_version(wheel: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(wheel)
    except PackageNotFoundError:
        return "?"


async def run_checks(host: str, environ: Mapping[str, str] = os.environ) -> list[Check]:
    """Every check for `host`, in order; later checks skip what earlier ones ruled out.

    A variable that fails validation gets a FAIL line naming it; the other checks
    still run with it at its default, except those that would use it: no lum.id
    check when LUM_ID_BASE_URL failed (the default is the real lum.id), no database
    check when LUMID_ACL_DB_PATH failed, and no host check naming a failed variable.
    """
    from lumid_core.doctor import (
        Check,
        DoctorContext,
        HostNotInstalledError,
        Status,
        check_insecure_urls,
        check_lumid,
        check_settings,
        check_store,
        load_host_doctor,
    )
    from lumid_core.http import make_http_client

    try:
        host_doctor = load_host_doctor(host)
    except HostNotInstalledError as exc:
        return [Check("plugin", Status.FAIL, str(exc))]
    except Exception as exc:
        return [Check("plugin", Status.FAIL, f"the {host} plugin failed to load: {exc}")]
    wheel = KNOWN_HOSTS.get(host, f"lumid-{host}-plugin")
    checks = [Check("plugin", Status.OK, f"{wheel} {_wheel_version(wheel)} installed")]

    loaded = check_settings(host_doctor.settings_class)
    checks += loaded.checks
    settings, failed = loaded.settings, loaded.failed
    if settings is None:
        return checks
    checks += check_insecure_urls(settings)  # allowed by LUMID_ALLOW_INSECURE_HTTP=1
    store = await check_store(settings, failed)
    checks += store.checks
    http = make_http_client(settings)
    try:
        ctx = DoctorContext(
            settings=settings,
            http=http,
            environ=environ,
            db=store.db,
            db_not_created=store.not_created,
        )
        if "LUM_ID_BASE_URL" not in failed:
            checks.append(await check_lumid(ctx))
        try:
            host_checks = await host_doctor.checks(ctx)
        except Exception as exc:
            checks.append(
                Check(host, Status.FAIL, f"the {host} checks crashed: {type(exc).__name__}")
            )
        else:
            checks += [c for c in host_checks if c.env_var not in failed or c.env_var is None]
    finally:
        await http.aclose()
        if store.db is not None:
            await store.db.close()
    return checks


async def _doctor(args: argparse.Namespace) -> int:
    from lumid_core.doctor import Status

    hosts = sorted(set(KNOWN_HOSTS) | set(installed_hosts()))
    if args.host not in hosts:
        raise UsageError(
            f"argument --host: invalid choice: {printable(args.host)!r} "
            f"(choose from {', '.join(hosts)})"
        )

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

"""`lumid doctor`: the checks an operator runs before starting a server.

The core runs the checks every host shares (settings, the ACL database, lum.id);
each host plugin adds its own through the `lumid.doctor` entry-point group, named
after the host (`flowmesh`, `lumilake`) and pointing at an object that satisfies
`HostDoctor`. The core never imports a plugin: it only loads that entry point.

A check never puts a secret in its detail; it names the environment variable at
fault instead. The modules: `report` (the report lines, `HostDoctor`, loading),
`context` (`DoctorContext`), `checks` (the shared checks), `database` (the SQLite
file's checks) and `host` (a base for the plugins' doctors).
"""

from __future__ import annotations

from lumid_core.hosts import DOCTOR_GROUP, KNOWN_HOSTS, installed_hosts
from lumid_core.urls import redact_url

from .checks import (
    SettingsChecks,
    StoreChecks,
    check_insecure_urls,
    check_lumid,
    check_plugins_listed,
    check_settings,
    check_store,
)
from .context import DoctorContext
from .database import check_database, check_database_identity, check_upgrade
from .host import PluginDoctor
from .report import (
    Check,
    HostDoctor,
    HostNotInstalledError,
    Introspection,
    Status,
    load_host_doctor,
)

__all__ = [
    "DOCTOR_GROUP",
    "KNOWN_HOSTS",
    "Check",
    "DoctorContext",
    "HostDoctor",
    "HostNotInstalledError",
    "Introspection",
    "PluginDoctor",
    "SettingsChecks",
    "Status",
    "StoreChecks",
    "check_database",
    "check_database_identity",
    "check_insecure_urls",
    "check_lumid",
    "check_plugins_listed",
    "check_settings",
    "check_store",
    "check_upgrade",
    "installed_hosts",
    "load_host_doctor",
    "redact_url",
]

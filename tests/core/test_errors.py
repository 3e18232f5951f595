"""One error root: what the core raises on purpose is a `LumidError`, with its data.

Each case causes the failure for real (a bad environment, an unusable database
path, a refused connection, a host that is not installed) and checks the error a
caller would catch.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from lumid_core import (
    ConfigError,
    Database,
    DatabaseError,
    LumidError,
    LumidSettings,
    SettingsError,
    StoreError,
    UpstreamError,
    load_settings,
)
from lumid_core.doctor import HostNotInstalledError, load_host_doctor
from lumid_core.http import exchange


def test_settings_errors_carry_each_variable_and_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMID_INTROSPECT_TIMEOUT_SECONDS", "-1")
    monkeypatch.setenv("LUM_ID_BASE_URL", "http://lum.id:abc")
    with pytest.raises(SettingsError) as caught:
        load_settings(LumidSettings)
    exc = caught.value
    assert isinstance(exc, ConfigError)
    assert isinstance(exc, LumidError)
    assert isinstance(exc, ValueError)  # callers that caught ValueError still do
    assert exc.variables == {"LUMID_INTROSPECT_TIMEOUT_SECONDS", "LUM_ID_BASE_URL"}
    by_var = {p.variable: p.reason for p in exc.problems}
    assert "greater than 0" in by_var["LUMID_INTROSPECT_TIMEOUT_SECONDS"]
    assert "port" in by_var["LUM_ID_BASE_URL"]
    # the message is the problems joined, each naming its variable
    for problem in exc.problems:
        assert str(problem) in str(exc)
        assert str(problem).startswith(problem.variable + ": ")


async def test_database_errors_are_store_errors_naming_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DatabaseError) as caught:
        await Database.open(blocker / "acl.sqlite")
    exc = caught.value
    assert isinstance(exc, StoreError)
    assert isinstance(exc, LumidError)
    assert exc.variable == "LUMID_ACL_DB_PATH"
    assert str(exc).startswith("LUMID_ACL_DB_PATH=")


async def test_upstream_failures_are_upstream_errors() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(UpstreamError) as caught:
            await exchange(client, "GET", f"http://127.0.0.1:{port}/", deadline=5.0, max_bytes=1024)
    assert isinstance(caught.value, LumidError)


def test_a_missing_host_plugin_is_a_lumid_error() -> None:
    with pytest.raises(HostNotInstalledError) as caught:
        load_host_doctor("no-such-host")
    assert isinstance(caught.value, LumidError)
    assert isinstance(caught.value, LookupError)

"""`lumid doctor` against a hostile lum.id: a prompt FAIL line, never a traceback."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

import pytest

from lumid_fakes import FakeLumId

type Cli = Callable[..., subprocess.CompletedProcess[str]]


def _lumid_line(r: subprocess.CompletedProcess[str]) -> str:
    (line,) = [ln for ln in r.stdout.splitlines() if ln[6:].startswith("lum.id")]
    return line


@pytest.mark.parametrize(
    ("raw", "expect"),
    [
        (b"[" * 200_000, "not JSON (reply is nested too deeply)"),
        (json.dumps({"active": True, "sub": "eve\ud800"}).encode(), "'sub' is not valid"),
        (b"x" * 300_000, "too large to read"),
    ],
)
def test_nonsense_is_a_fail_line(cli: Cli, fake_lumid: FakeLumId, raw: bytes, expect: str) -> None:
    fake_lumid.mode = "raw"
    fake_lumid.raw_body = raw
    for args in ((), ("--json",)):
        r = cli("doctor", "--host", "lumilake", *args, env={"LUM_ID_BASE_URL": fake_lumid.url})
        assert r.returncode == 1, r.stderr
        assert "Traceback" not in r.stdout + r.stderr
    line = _lumid_line(cli("doctor", "--host", "lumilake", env={"LUM_ID_BASE_URL": fake_lumid.url}))
    assert line.startswith("FAIL")
    assert expect in line


def test_an_unprintable_inactive_reason_is_not_printed(cli: Cli, fake_lumid: FakeLumId) -> None:
    fake_lumid.mode = "raw"
    fake_lumid.raw_body = json.dumps({"active": False, "reason": "gone\ud800\x1b[2J"}).encode()
    for args in ((), ("--json",)):
        r = cli("doctor", "--host", "lumilake", *args, env={"LUM_ID_BASE_URL": fake_lumid.url})
        assert "Traceback" not in r.stdout + r.stderr
        assert "\x1b" not in r.stdout
    assert _lumid_line(
        r := cli("doctor", "--host", "lumilake", env={"LUM_ID_BASE_URL": fake_lumid.url})
    ).startswith("OK"), r.stdout


def test_a_dripping_lumid_fails_within_the_timeout(cli: Cli, fake_lumid: FakeLumId) -> None:
    fake_lumid.delivery = "drip-body"
    started = time.monotonic()
    r = cli(
        "doctor",
        "--host",
        "lumilake",
        env={"LUM_ID_BASE_URL": fake_lumid.url, "LUMID_INTROSPECT_TIMEOUT_SECONDS": "2"},
    )
    assert time.monotonic() - started < 15  # interpreter start-up included
    assert r.returncode == 1
    line = _lumid_line(r)
    assert line.startswith("FAIL")
    assert "no reply within 2s (LUMID_INTROSPECT_TIMEOUT_SECONDS)" in line

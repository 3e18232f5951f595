"""A real package index on 127.0.0.1: pypiserver in a child process.

Uploads need a user and password (an htpasswd file with a random password);
downloads and listings are open, like a private index seen from inside its
network. Files are never overwritten (pypiserver's default), and unknown
projects are not redirected to PyPI (`--disable-fallback`), so a package that
was not uploaded here cannot be served from here by accident.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Self

from lumid_fakes.service import Service

__all__ = ["LocalIndex", "LocalIndexError"]

_START_TIMEOUT_SECONDS = 30.0


class LocalIndexError(RuntimeError):
    """The local index could not be started."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _htpasswd_sha(user: str, password: str) -> str:
    # Apache's {SHA} scheme, which pypiserver reads through passlib. Only a test or
    # demo credential that lives as long as the index is ever stored this way.
    digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()  # noqa: S324
    return f"{user}:{{SHA}}{digest}\n"


class LocalIndex(Service):
    """`with LocalIndex() as index:` serves `index.simple_url`, accepts uploads at
    `index.upload_url` with `index.username` / `index.password`."""

    def __init__(self, root: Path | None = None) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="lumid-index-")) if root is None else root
        self.packages = self.root / "packages"
        self.username = "uploader"
        self.password = secrets.token_urlsafe(24)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "pypiserver.log"

    def __repr__(self) -> str:
        return f"LocalIndex({self.base_url!r})"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def upload_url(self) -> str:
        return f"{self.base_url}/"

    @property
    def simple_url(self) -> str:
        return f"{self.base_url}/simple/"

    def publish_env(self) -> dict[str, str]:
        """uv's standard variables that point `make publish` at this index."""
        return {
            "UV_PUBLISH_URL": self.upload_url,
            "UV_PUBLISH_CHECK_URL": self.simple_url,
            "UV_PUBLISH_USERNAME": self.username,
            "UV_PUBLISH_PASSWORD": self.password,
        }

    def files(self) -> dict[str, str]:
        """Every stored file name -> its sha256."""
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.packages.iterdir())
            if p.is_file()
        }

    def start(self) -> Self:
        self.packages.mkdir(parents=True, exist_ok=True)
        htpasswd = self.root / "htpasswd"
        htpasswd.write_text(_htpasswd_sha(self.username, self.password))
        htpasswd.chmod(0o600)
        for _attempt in range(3):
            self.port = _free_port()
            log = self.log_path.open("ab")
            try:
                argv = [sys.executable, "-m", "pypiserver", "run", "--host", "127.0.0.1"]
                argv += ["--port", str(self.port), "--authenticate", "update"]
                argv += ["--passwords", str(htpasswd), "--disable-fallback"]
                argv += ["--server", "wsgiref", str(self.packages)]
                self._proc = subprocess.Popen(  # noqa: S603 (fixed argv)
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            finally:
                log.close()
            if self._wait_healthy():
                return self
            self._terminate()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise LocalIndexError(f"pypiserver did not start on 127.0.0.1; its log ends with:\n{tail}")

    def _wait_healthy(self) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False  # exited (e.g. the port was taken meanwhile)
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=1) as reply:  # noqa: S310 (loopback http)
                    if reply.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def stop(self) -> None:
        self._terminate()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

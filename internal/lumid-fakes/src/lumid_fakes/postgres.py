"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks (initdb + pg_ctl).

Not an emulator: the machine's real PostgreSQL binaries, run in a temporary folder,
listening on one free loopback port, stopped (`-m immediate`) and removed on exit.
Debian keeps `initdb`/`pg_ctl` off PATH under /usr/lib/postgresql/<major>/bin, and
`initdb` refuses to run as root: as root the cluster runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Final, Self
from urllib.parse import quote

from .service import Service

__all__ = ["INSTALL_HINT", "PgCluster", "find_pg_bin"]

INSTALL_HINT: Final = (
    "PostgreSQL server binaries not found (initdb, pg_ctl): apt-get install postgresql"
)
ADMIN: Final = "lumid_admin"


def find_pg_bin() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: PATH first, then the newest Debian major."""
    found = shutil.which("initdb")
    if found:
        folder = Path(found).resolve().parent  # Debian's PATH entries are symlinks
        if (folder / "pg_ctl").exists():
            return folder
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    for initdb in reversed(candidates):
        folder = Path(initdb).parent
        if (folder / "pg_ctl").exists():
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PgCluster(Service):
    """A started cluster: `url(db)` for an admin connection, `create_database()` per test.

    The admin role authenticates with a random password over TCP (scram-sha-256);
    the unix socket lives in the temporary folder (trust, owner only).
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self._root: Path | None = None
        self._counter = 0

    # -- lifecycle ----------------------------------------------------------------

    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        runuser = shutil.which("runuser")
        if runuser is None:
            raise RuntimeError("running as root needs `runuser` to start PostgreSQL as postgres")
        return [runuser, "-u", "postgres", "--"]

    def start(self) -> Self:
        """initdb into a temporary folder and start the server; returns self.

        Raises RuntimeError with the tool's own error output when either step fails.
        """
        try:
            return self._start()
        except subprocess.CalledProcessError as exc:
            self.stop()
            names = [Path(str(part)).name for part in exc.cmd]
            tool = next((n for n in names if n in ("initdb", "pg_ctl")), names[0])
            err = (exc.stderr or b"").decode(errors="replace").strip()[-800:]
            raise RuntimeError(f"PostgreSQL test cluster: {tool} failed: {err}") from None
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Self:
        # As root the server runs as `postgres`, which must reach the folder: /tmp is
        # world-traversable where $TMPDIR may not be; a short path also keeps the
        # socket's path under the 107-byte limit.
        base = "/tmp" if os.geteuid() == 0 and os.path.isdir("/tmp") else None  # noqa: S108
        root = Path(tempfile.mkdtemp(prefix="lumid-pg-", dir=base))
        self._root = root
        data, sock = root / "data", root / "sock"
        sock.mkdir()
        pwfile = root / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            try:
                pg = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root needs a `postgres` user") from None
            for path in (root, sock, pwfile):
                os.chown(path, pg.pw_uid, pg.pw_gid)
        os.chmod(pwfile, 0o600)
        run = self._as_owner()
        subprocess.run(  # noqa: S603 (fixed argv: the machine's PostgreSQL binaries)
            [
                *run,
                str(self.bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                ADMIN,
                "--pwfile",
                str(pwfile),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        pwfile.unlink()
        self.port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={sock} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        subprocess.run(  # noqa: S603 (fixed argv: the machine's PostgreSQL binaries)
            [
                *run,
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        return self

    def stop(self) -> None:
        """Stop the server at once and remove its folder."""
        root, self._root = self._root, None
        if root is None:
            return
        try:
            subprocess.run(  # noqa: S603 (fixed argv: the machine's PostgreSQL binaries)
                [
                    *self._as_owner(),
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(root / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                check=False,
                capture_output=True,
            )
        finally:
            shutil.rmtree(root, ignore_errors=True)

    # -- use ----------------------------------------------------------------------

    def url(
        self, database: str = "postgres", *, user: str = ADMIN, password: str | None = None
    ) -> str:
        """A postgresql:// URL on 127.0.0.1 (the admin role's password by default)."""
        pw = self.password if password is None else password
        auth = f"{quote(user, safe='')}:{quote(pw, safe='')}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` as the admin role over TCP and return psql's unaligned output."""
        out = subprocess.run(  # noqa: S603 (fixed argv: the machine's PostgreSQL binaries)
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                ADMIN,
                "-d",
                database,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": self.password},
        )
        return out.stdout

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its name."""
        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

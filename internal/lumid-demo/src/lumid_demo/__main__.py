"""`make demo`: publish the built wheels to a local index, install each plugin from
it into a fresh venv, and walk one session through every hook in that venv.

Run from the checkout after `make build` (the Makefile does both):

    uv run python -m lumid_demo

Needs no outside service: the index (pypiserver), lum.id, Runmesh and the remote
optimizer all run on 127.0.0.1. Third-party dependencies come from PyPI (or uv's
cache). Exit code 0 only when every step of both walks behaved as expected.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .index import LocalIndex

PYPI = "https://pypi.org/simple"
PLUGINS = (("flowmesh", "lumid-flowmesh-plugin"), ("lumilake", "lumid-lumilake-plugin"))
INTERNAL = ("lumid-fakes", "lumid-demo")


class DemoError(RuntimeError):
    pass


def _root() -> Path:
    root = Path.cwd()
    if not (root / "scripts" / "release.py").is_file():
        raise DemoError(f"run from the checkout (no scripts/release.py under {root})")
    return root


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without the workspace venv or any plugin/publish setting."""
    prefixes = ("LUMID_", "LUM_ID_", "FLOWMESH_", "LUMILAKE_", "RUNMESH_", "UV_PUBLISH_")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not k.startswith(prefixes)
    }
    env.update(extra or {})
    return env


def _run(argv: Sequence[str | Path], *, cwd: Path, env: Mapping[str, str], quiet: bool) -> str:
    result = subprocess.run(  # noqa: S603 (argv built here)
        [str(a) for a in argv],
        cwd=cwd,
        env=dict(env),
        capture_output=quiet,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout or "") + (result.stderr or "") if quiet else ""
        raise DemoError(f"{Path(str(argv[0])).name} {argv[1]} failed:\n{output}")
    return result.stdout or ""


_STARTED = time.monotonic()


def _say(text: str) -> None:
    print(f"== [{time.monotonic() - _STARTED:5.1f}s] {text}", flush=True)


def _install(
    uv: Path, tmp: Path, host: str, dist: str, index: LocalIndex, extras: list[Path]
) -> tuple[Path, str]:
    """A fresh venv with `dist` from the local index (deps from PyPI) plus the
    never-published emulators and walk, as local wheels without dependencies."""
    venv = tmp / f"venv-{host}"
    base = str(getattr(sys, "_base_executable", "") or sys.executable)
    env = _env()
    _run([uv, "venv", "--no-config", "--quiet", "--python", base, venv], cwd=tmp, env=env,
         quiet=True)  # fmt: skip
    python = venv / "bin" / "python"
    # The local index first: lumid-* can only come from it (first-index strategy);
    # everything else falls through to PyPI.
    _run([uv, "pip", "install", "--no-config", "--quiet", "--python", python,
          "--index", index.simple_url, "--default-index", PYPI, dist],
         cwd=tmp, env=env, quiet=True)  # fmt: skip
    _run([uv, "pip", "install", "--no-config", "--quiet", "--no-deps", "--python", python,
          *extras], cwd=tmp, env=env, quiet=True)  # fmt: skip
    versions = _run([python, "-I", "-m", "lumid_demo.walk", "--versions"], cwd=tmp, env=env,
                    quiet=True)  # fmt: skip
    return python, versions.strip()


def demo() -> int:
    root = _root()
    uv = root / ".tools" / "bin" / "uv"
    dist = root / "dist"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lumid-demo-") as tmp_name:
        tmp = Path(tmp_name)
        with LocalIndex(tmp / "index") as index:
            _say(f"local package index (pypiserver) at {index.simple_url}, uploads need a password")
            internal = tmp / "internal"
            with ThreadPoolExecutor(len(INTERNAL)) as pool:
                # The never-published helpers build while the release is published.
                builds = [
                    pool.submit(_run, [uv, "build", "--quiet", "--wheel", "--package", member,
                                       "--out-dir", internal], cwd=root, env=_env(), quiet=True)
                    for member in INTERNAL
                ]  # fmt: skip
                _say("make publish, pointed at it with UV_PUBLISH_URL / UV_PUBLISH_CHECK_URL")
                _run([sys.executable, root / "scripts" / "release.py", "publish", "--dist-dir",
                      dist], cwd=root, env=_env(index.publish_env()), quiet=False)  # fmt: skip
                for name in sorted(index.files()):
                    print(f"   on the index: {name}")
                for build in builds:
                    build.result()
            extras = sorted(internal.glob("*.whl"))
            _say("installing each plugin from the local index into a fresh venv")
            with ThreadPoolExecutor(len(PLUGINS)) as pool:
                installed = list(
                    pool.map(lambda p: _install(uv, tmp, p[0], p[1], index, extras), PLUGINS)
                )
            pythons = [python for python, _versions in installed]
            for (_host, dist_name), (python, versions) in zip(PLUGINS, installed, strict=True):
                print(f"   {python.parent.parent.name}: {dist_name} -> {versions}")
        failed = []
        for (host, _dist_name), python in zip(PLUGINS, pythons, strict=True):
            _say(f"{host}: the session, run inside {python.parent.parent.name}")
            code = subprocess.run(  # noqa: S603
                [str(python), "-I", "-m", "lumid_demo.walk", host],
                cwd=tmp, env=_env(), check=False,
            ).returncode  # fmt: skip
            if code != 0:
                failed.append(host)
    elapsed = time.monotonic() - started
    if failed:
        _say(f"demo FAILED for {', '.join(failed)} ({elapsed:.1f}s)")
        return 1
    _say(f"demo OK in {elapsed:.1f}s: both plugins installed from the index, all steps as expected")
    return 0


def main() -> int:
    try:
        return demo()
    except DemoError as exc:
        print(f"== demo error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Build, check and publish the three published distributions.

    python scripts/release.py build       [--dist-dir DIR]   # make build
    python scripts/release.py check-dist  [--dist-dir DIR]   # make check-dist
    python scripts/release.py publish     [--dist-dir DIR]   # make publish

Run with the workspace's interpreter (`uv run`); see docs/releasing.md.

Only the distributions in PUBLISHED are ever built or uploaded: the workspace's
`internal/*` members (emulators, the demo) are never built by this script, which
is why it names each package instead of using `uv build --all-packages`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import email.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
UV = ROOT / ".tools" / "bin" / "uv"
HOSTS_SCRIPT = ROOT / "internal" / "lumid-demo" / "src" / "lumid_demo" / "hosts.py"
INDEX_NAME = "lumid-private"


@dataclass(frozen=True)
class Dist:
    name: str
    module: str
    host: str | None  # "flowmesh" / "lumilake" for a plugin
    hook: str | None  # the host's hook distribution a plugin must require

    @property
    def project_dir(self) -> Path:
        return ROOT / "packages" / self.name

    @property
    def stem(self) -> str:
        return self.name.replace("-", "_")


CORE = Dist("lumid-core", "lumid_core", None, None)
PUBLISHED: tuple[Dist, ...] = (
    CORE,
    Dist("lumid-flowmesh-plugin", "lumid_flowmesh_plugin", "flowmesh", "flowmesh-hook"),
    Dist("lumid-lumilake-plugin", "lumid_lumilake_plugin", "lumilake", "lumilake-hook"),
)
"""Upload order matters: the core first, so a plugin never lands without it."""


class ReleaseError(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"[release] {message}", flush=True)


_only: set[str] = set()
"""Names given with --only: restrict a command to these distributions."""


def present() -> list[Dist]:
    """The distributions a command works on: all three, or those given with --only."""
    chosen = [d for d in PUBLISHED if not _only or d.name in _only]
    for d in chosen:
        if not (d.project_dir / "pyproject.toml").is_file():
            raise ReleaseError(f"packages/{d.name}/pyproject.toml is missing")
    return chosen


def version_of(dist: Dist) -> str:
    data = tomllib.loads((dist.project_dir / "pyproject.toml").read_text())
    version = data.get("project", {}).get("version")
    if not isinstance(version, str):
        raise ReleaseError(f"packages/{dist.name}/pyproject.toml: no static [project] version")
    return version


def run(argv: Sequence[str | Path], *, env: Mapping[str, str] | None = None) -> None:
    result = subprocess.run(  # noqa: S603 (argv built here, no shell)
        [str(a) for a in argv], cwd=ROOT, env=env, check=False
    )
    if result.returncode != 0:
        raise ReleaseError(f"{Path(str(argv[0])).name} {argv[1]} failed ({result.returncode})")


def artifacts(dist_dir: Path, dist: Dist) -> tuple[Path, Path]:
    """The wheel and sdist of `dist` at its current version in `dist_dir`."""
    version = version_of(dist)
    wheel = dist_dir / f"{dist.stem}-{version}-py3-none-any.whl"
    sdist = dist_dir / f"{dist.stem}-{version}.tar.gz"
    for path in (wheel, sdist):
        if not path.is_file():
            raise ReleaseError(f"{path} is missing: run `make build` first")
    return wheel, sdist


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode())


def check_metadata(dist_dir: Path, dists: Sequence[Dist]) -> None:
    """Every plugin requires the core with a bounded range holding the built core,
    and its host's hook package with a minimum version."""
    core_version = Version(version_of(CORE))  # the one in the checkout, built or not
    for dist in dists:
        meta = wheel_metadata(artifacts(dist_dir, dist)[0])
        if meta["Version"] != version_of(dist):
            raise ReleaseError(f"{dist.name}: METADATA version {meta['Version']} != pyproject")
        requires: dict[str, Requirement] = {
            canonicalize_name(r.name): r
            for r in map(Requirement, meta.get_all("Requires-Dist", []))
        }
        if dist.host is None:
            continue
        core = requires.get("lumid-core")
        if core is None or not core.specifier:
            raise ReleaseError(f"{dist.name}: METADATA has no version range for lumid-core")
        if not any(s.operator in ("<", "<=", "~=", "==") for s in core.specifier):
            raise ReleaseError(f"{dist.name}: lumid-core{core.specifier} has no upper bound")
        if core_version not in core.specifier:
            raise ReleaseError(
                f"{dist.name}: requires lumid-core{core.specifier}, "
                f"which excludes the lumid-core {core_version} built with it"
            )
        assert dist.hook is not None
        hook = requires.get(dist.hook)
        if hook is None or not any(s.operator in (">=", "~=") for s in hook.specifier):
            raise ReleaseError(f"{dist.name}: METADATA has no minimum version for {dist.hook}")
        say(f"{dist.name}: requires lumid-core{core.specifier} and {dist.hook}{hook.specifier}")


def cmd_build(dist_dir: Path) -> None:
    dists = present()
    if dist_dir.exists():
        shutil.rmtree(dist_dir)  # never publish a stale file left from an older version
    dist_dir.mkdir(parents=True)
    for dist in dists:
        say(f"building {dist.name} {version_of(dist)} (no workspace sources)")
    # One uv build per distribution (never --all-packages), run side by side.
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(dists)) as pool:
        argvs: list[list[str | Path]] = [
            [UV, "build", "--quiet", "--no-sources", "--package", d.name, "--out-dir", dist_dir]
            for d in dists
        ]
        futures = [pool.submit(run, argv) for argv in argvs]
        for future in futures:
            future.result()
    files = sorted(str(p) for d in dists for p in artifacts(dist_dir, d))
    made = {p.name for p in dist_dir.iterdir() if not p.name.startswith(".")}
    unexpected = sorted(made - {Path(f).name for f in files})
    if unexpected:
        raise ReleaseError(f"{dist_dir}: unexpected files {unexpected}")
    say("twine check --strict")
    run([sys.executable, "-m", "twine", "check", "--strict", *files])
    check_metadata(dist_dir, dists)
    say(f"built {len(files)} files into {dist_dir}")


_HOST_ENV_PREFIXES = ("LUMID_", "LUM_ID_", "FLOWMESH_", "LUMILAKE_", "RUNMESH_", "UV_PUBLISH_")


def base_python() -> str:
    """The interpreter the workspace venv was made from (Python 3.12, no download)."""
    return str(getattr(sys, "_base_executable", "") or sys.executable)


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment minus the workspace venv and any plugin or publish settings."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(_HOST_ENV_PREFIXES)
    }
    env.update(extra)
    return env


def _check_one(dist: Dist, wheels: Mapping[str, Path]) -> tuple[bool, str]:
    """Install `dist`'s wheel (and the built core) into a fresh venv outside the
    workspace, then load it the way its host does."""
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix=f"check-{dist.name}-") as tmp:
        venv = Path(tmp) / "venv"
        python = venv / "bin" / "python"
        env = clean_env({})

        def step(argv: Sequence[str | Path], step_env: Mapping[str, str] = env) -> bool:
            r = subprocess.run(  # noqa: S603
                [str(a) for a in argv], cwd=tmp, env=dict(step_env), capture_output=True,
                text=True, check=False,
            )  # fmt: skip
            out.append("$ " + " ".join([Path(str(argv[0])).name, *map(str, argv[1:])]))
            out.append((r.stdout + r.stderr).rstrip())
            return r.returncode == 0

        install = [wheels[CORE.name]] if dist is CORE else [wheels[CORE.name], wheels[dist.name]]
        ok = step([UV, "venv", "--no-config", "--quiet", "--python", base_python(), venv])
        ok = ok and step([UV, "pip", "install", "--no-config", "--quiet", "--python", python,
                          *install])  # fmt: skip
        ok = ok and step([UV, "pip", "check", "--no-config", "--python", python])
        run_env = clean_env({"LUMID_ACL_DB_PATH": str(Path(tmp) / "data" / "acl.sqlite")})
        if dist is CORE:
            ok = ok and step([python, "-I", HOSTS_SCRIPT, "core"], run_env)
            if ok and _has_console_script(wheels[CORE.name], "lumid"):
                ok = step([venv / "bin" / "lumid", "--help"], run_env)
        else:
            assert dist.host is not None
            ok = ok and step([python, "-I", HOSTS_SCRIPT, dist.host, dist.module], run_env)
    return ok, "\n".join(line for line in out if line)


def _has_console_script(wheel: Path, name: str) -> bool:
    with zipfile.ZipFile(wheel) as zf:
        eps = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = zf.read(eps[0]).decode() if eps else ""
    return re.search(rf"^\s*{re.escape(name)}\s*=", text, re.MULTILINE) is not None


def cmd_check(dist_dir: Path) -> None:
    dists = present()
    wheels = {d.name: artifacts(dist_dir, d)[0] for d in dists}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(dists)) as pool:
        results = list(pool.map(lambda d: _check_one(d, wheels), dists))
    failed = []
    for dist, (ok, log) in zip(dists, results, strict=True):
        say(f"{dist.name}: {'OK' if ok else 'FAILED'} in a fresh venv")
        print("    " + log.replace("\n", "\n    "), flush=True)
        if not ok:
            failed.append(dist.name)
    if failed:
        raise ReleaseError(f"check-dist failed for {', '.join(failed)}")


_SECRET_VARS = ("UV_PUBLISH_PASSWORD", "UV_PUBLISH_TOKEN")
_PLACEHOLDER_HOST = re.compile(r"://[^/]*\.invalid(?::\d+)?(/|$)")


def redact(text: str, env: Mapping[str, str]) -> str:
    """Remove credentials from a line of uv's output."""
    for var in _SECRET_VARS:
        secret = env.get(var, "")
        if secret:  # however short: mangled output beats a leaked credential
            text = text.replace(secret, "****")
    return re.sub(r"://[^/\s:@]+:[^/\s@]+@", "://****@", text)


def _configured_index() -> Mapping[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for index in data.get("tool", {}).get("uv", {}).get("index", []):
        if index.get("name") == INDEX_NAME:
            return {str(k): str(v) for k, v in index.items()}
    raise ReleaseError(f"pyproject.toml: no [[tool.uv.index]] named {INDEX_NAME!r}")


def cmd_publish(dist_dir: Path) -> None:
    dists = present()
    files = [p for d in dists for p in artifacts(dist_dir, d)]
    # uv reads these itself; an empty value would be an error inside uv, so drop it.
    env = {k: v for k, v in os.environ.items() if not (k.startswith("UV_PUBLISH_") and not v)}
    argv: list[str | Path] = [UV, "publish"]
    if env.get("UV_PUBLISH_URL"):
        if not env.get("UV_PUBLISH_CHECK_URL"):
            raise ReleaseError(
                "UV_PUBLISH_URL is set but UV_PUBLISH_CHECK_URL is not: set it to the "
                "index's simple URL so a re-run skips files already uploaded and refuses "
                "changed ones"
            )
        target = env["UV_PUBLISH_URL"]
    else:
        index = _configured_index()
        target = index.get("publish-url", "")
        if _PLACEHOLDER_HOST.search(target) or _PLACEHOLDER_HOST.search(index.get("url", "")):
            raise ReleaseError(
                f"the [[tool.uv.index]] {INDEX_NAME!r} in pyproject.toml is a placeholder "
                f"({target}); set UV_PUBLISH_URL and UV_PUBLISH_CHECK_URL, or edit it"
            )
        argv += ["--index", INDEX_NAME]  # its `url` is the check URL
    if not (env.get("UV_PUBLISH_TOKEN") or env.get("UV_PUBLISH_USERNAME")):
        say("no UV_PUBLISH_TOKEN or UV_PUBLISH_USERNAME/UV_PUBLISH_PASSWORD set")
    say(f"publishing {len(files)} files to {redact(target, env)}")
    proc = subprocess.Popen(  # noqa: S603
        [str(a) for a in [*argv, *files]],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        print(redact(line.rstrip("\n"), env), flush=True)
    if proc.wait() != 0:
        raise ReleaseError(
            f"uv publish failed ({proc.returncode}); a file that exists on the index with "
            "different bytes is refused: bump the version with `uv version --package NAME`"
        )
    say("published (files already on the index with the same bytes were skipped)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=("build", "check-dist", "publish"))
    parser.add_argument("--dist-dir", type=Path, default=ROOT / "dist")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        choices=[d.name for d in PUBLISHED],
        help="restrict to this distribution (repeatable); default: all three",
    )
    args = parser.parse_args(argv)
    _only.clear()
    _only.update(args.only)
    dist_dir = Path(args.dist_dir).resolve()
    try:
        {"build": cmd_build, "check-dist": cmd_check, "publish": cmd_publish}[args.command](
            dist_dir
        )
    except ReleaseError as exc:
        print(f"[release] error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

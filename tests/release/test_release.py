"""The release path end to end: `make build`, `make check-dist`, `make publish`.

One module-scoped build (scripts/release.py, as the Makefile runs it) feeds every
test. Publishing goes to a real index (pypiserver on 127.0.0.1, upload needs a
password) through the same script `make publish` runs, configured by uv's
standard variables; the plugins are then pip-installed from that index into fresh
venvs and loaded the way their hosts load them, against loopback emulators.
"""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from lumid_demo.index import LocalIndex
from lumid_fakes import FakeLumId, FakeOptimizer, FakeRunmesh

pytestmark = pytest.mark.dist

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "scripts" / "release.py"
HOSTS = ROOT / "internal" / "lumid-demo" / "src" / "lumid_demo" / "hosts.py"
PYPI = "https://pypi.org/simple"
PUBLISHED = ("lumid-core", "lumid-flowmesh-plugin", "lumid-lumilake-plugin")
PLUGINS = {
    "lumid-flowmesh-plugin": ("flowmesh", "lumid_flowmesh_plugin", "flowmesh-hook", "0.1.13"),
    "lumid-lumilake-plugin": ("lumilake", "lumid_lumilake_plugin", "lumilake-hook", "0.1.10"),
}


def version(name: str) -> str:
    data = tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text())
    return str(data["project"]["version"])


def wheel_name(name: str) -> str:
    return f"{name.replace('-', '_')}-{version(name)}-py3-none-any.whl"


def release(*args: str | Path, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run scripts/release.py as `make` does; (exit code, stdout + stderr)."""
    run_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UV_PUBLISH_", "LUMID_", "LUM_ID_"))
    }
    run_env.update(env or {})
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(RELEASE), *map(str, args)],
        cwd=ROOT,
        env=run_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    return result.returncode, result.stdout + result.stderr


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode())


def requires(wheel: Path) -> dict[str, SpecifierSet]:
    reqs = map(Requirement, metadata(wheel).get_all("Requires-Dist", []))
    return {canonicalize_name(r.name): r.specifier for r in reqs if r.marker is None}


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    code, log = release("build", "--dist-dir", out)
    assert code == 0, log
    assert "twine check --strict" in log
    return out


def test_build_holds_exactly_the_published_distributions(dist_dir: Path) -> None:
    expected = {wheel_name(n) for n in PUBLISHED} | {
        f"{n.replace('-', '_')}-{version(n)}.tar.gz" for n in PUBLISHED
    }
    # Never an internal/* member (lumid-fakes, lumid-demo) nor the workspace root.
    assert {p.name for p in dist_dir.iterdir() if not p.name.startswith(".")} == expected


def test_core_metadata_pins_its_dependencies(dist_dir: Path) -> None:
    wheel = dist_dir / wheel_name("lumid-core")
    meta = metadata(wheel)
    assert meta["Name"] == "lumid-core"
    assert meta["Version"] == version("lumid-core")
    assert Version("3.12.0") in SpecifierSet(meta["Requires-Python"])
    deps = requires(wheel)
    assert "flowmesh-hook" not in deps
    assert "lumilake-hook" not in deps
    assert Version("0.2.0") in deps["lumid-hooks"]
    assert Version("0.3.0") not in deps["lumid-hooks"]


@pytest.mark.parametrize("name", list(PLUGINS))
def test_plugin_metadata_declares_a_compatible_core_range(dist_dir: Path, name: str) -> None:
    _host, _module, hook, hook_min = PLUGINS[name]
    wheel = dist_dir / wheel_name(name)
    meta = metadata(wheel)
    assert meta["Version"] == version(name)
    deps = requires(wheel)
    # A workspace source alone would leave a bare `lumid-core` here.
    core = deps["lumid-core"]
    core_version = Version(version("lumid-core"))
    assert core_version in core
    breaking = (
        Version(f"0.{core_version.minor + 1}.0")
        if core_version.major == 0
        else Version(f"{core_version.major + 1}.0.0")
    )
    assert breaking not in core, f"{name}: lumid-core{core} admits the breaking {breaking}"
    assert Version(hook_min) in deps[hook]
    older = Version(hook_min)
    assert Version(f"{older.major}.{older.minor}.{older.micro - 1}") not in deps[hook]
    assert Version("0.2.0") in deps["lumid-hooks"]


def test_check_dist_installs_each_wheel_alone_and_loads_it(dist_dir: Path) -> None:
    code, log = release("check-dist", "--dist-dir", dist_dir)
    assert code == 0, log
    for name in PUBLISHED:
        assert f"{name}: OK in a fresh venv" in log
    assert "imports without a host hook package" in log
    for name in list(PLUGINS):
        host, module, _hook, _min = PLUGINS[name]
        assert f"{module}: loaded the {host} way and shut down cleanly" in log


def test_publish_refuses_the_placeholder_index(dist_dir: Path) -> None:
    code, log = release("publish", "--dist-dir", dist_dir)
    assert code != 0
    assert "lumid-private" in log
    assert "UV_PUBLISH_URL" in log


def test_publish_url_needs_a_check_url(dist_dir: Path) -> None:
    code, log = release(
        "publish", "--dist-dir", dist_dir, env={"UV_PUBLISH_URL": "http://127.0.0.1:9/"}
    )
    assert code != 0
    assert "UV_PUBLISH_CHECK_URL" in log


@pytest.fixture
def index() -> Iterator[LocalIndex]:
    with LocalIndex() as idx:
        yield idx


def _tampered_copy(dist_dir: Path, dest: Path, name: str) -> None:
    dest.mkdir()
    for path in dist_dir.iterdir():
        if path.name.startswith(name.replace("-", "_") + "-"):
            shutil.copy2(path, dest / path.name)
    with zipfile.ZipFile(dest / wheel_name(name), "a") as zf:
        zf.writestr(f"{name.replace('-', '_')}/tampered.txt", "different bytes")


def test_publish_is_idempotent_and_never_overwrites(
    dist_dir: Path, index: LocalIndex, tmp_path: Path
) -> None:
    env = index.publish_env()
    built = {p.name: p.read_bytes() for p in dist_dir.iterdir() if not p.name.startswith(".")}

    # A partial upload: only the core got there.
    code, log = release("publish", "--only", "lumid-core", "--dist-dir", dist_dir, env=env)
    assert code == 0, log
    assert set(index.files()) == {n for n in built if n.startswith("lumid_core-")}

    # Re-running the whole publish completes it and skips what is there.
    code, log = release("publish", "--dist-dir", dist_dir, env=env)
    assert code == 0, log
    assert f"File {wheel_name('lumid-core')} already exists, skipping" in log
    after_first = index.files()
    assert set(after_first) == set(built)

    # Once more: nothing changes.
    code, log = release("publish", "--dist-dir", dist_dir, env=env)
    assert code == 0, log
    assert index.files() == after_first

    # The same version with different bytes is refused, and the index keeps the old file.
    _tampered_copy(dist_dir, tmp_path / "tampered", "lumid-core")
    code, log = release("publish", "--only", "lumid-core", "--dist-dir", tmp_path / "tampered",
                        env=env)  # fmt: skip
    assert code != 0
    assert "do not match" in log
    assert "bump the version" in log
    assert index.files() == after_first

    # A wrong password fails, and no output ever shows a credential.
    wrong = {**env, "UV_PUBLISH_PASSWORD": "wrong-" + env["UV_PUBLISH_PASSWORD"]}
    code, bad_log = release("publish", "--only", "lumid-core", "--dist-dir",
                            tmp_path / "tampered", env=wrong)  # fmt: skip
    assert code != 0
    for text in (log, bad_log):
        assert env["UV_PUBLISH_PASSWORD"] not in text


def _pip_install(target: Path, index: LocalIndex, name: str) -> tuple[Path, str]:
    venv.create(target, with_pip=True, clear=True)
    python = target / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(  # noqa: S603
        [str(python), "-m", "pip", "install", "--quiet", "--index-url", index.simple_url,
         "--extra-index-url", PYPI, name],
        env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    return python, result.stdout + result.stderr


def test_plugins_install_from_the_index_and_load_like_their_hosts(
    dist_dir: Path, index: LocalIndex, tmp_path: Path, fake_lumid: FakeLumId
) -> None:
    plugins = list(PLUGINS)
    code, log = release("publish", "--dist-dir", dist_dir, env=index.publish_env())
    assert code == 0, log
    with ThreadPoolExecutor(len(plugins)) as pool:
        installed = dict(
            zip(
                plugins,
                pool.map(lambda n: _pip_install(tmp_path / n, index, n), plugins),
                strict=True,
            )
        )
    with FakeRunmesh() as runmesh, FakeOptimizer(tokens=["svc-token"]) as optimizer:
        env_by_host = {
            "flowmesh": {
                "RUNMESH_BILLING_BASE_URL": runmesh.url,
                "FLOWMESH_BRIDGE_SECRET": runmesh.secret,
            },
            "lumilake": {
                "LUMILAKE_REMOTE_OPTIMIZER_URL": optimizer.url,
                "LUMILAKE_RUNTIME_TOKEN": "svc-token",
            },
        }
        for name in plugins:
            python, pip_log = installed[name]
            host, module, _hook, _min = PLUGINS[name]
            listed = subprocess.run(  # noqa: S603
                [str(python), "-m", "pip", "list", "--format=freeze"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            pins = dict(line.split("==", 1) for line in listed.stdout.split())
            assert pins.get(name) == version(name), pip_log
            assert pins.get("lumid-core") == version("lumid-core"), pip_log
            env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": os.environ.get("HOME", ""),
                "LUM_ID_BASE_URL": fake_lumid.url,
                "LUMID_ACL_DB_PATH": str(tmp_path / f"{host}.sqlite"),
                **env_by_host[host],
            }
            loaded = subprocess.run(  # noqa: S603
                [str(python), "-I", str(HOSTS), host, module],
                env=env, capture_output=True, text=True, check=False, timeout=120,
            )  # fmt: skip
            out = loaded.stdout + loaded.stderr
            assert loaded.returncode == 0, out
            assert f"{module}: loaded the {host} way and shut down cleanly" in out
            if host == "flowmesh":
                assert "supplier_resolvers: ['lumid_flowmesh_plugin." in out
                assert "usage_sinks: ['lumid_flowmesh_plugin." in out
            else:
                assert "optimizer_providers: ['lumid_lumilake_plugin." in out
                assert len(optimizer.catalog_calls()) == 1

"""The plugin and the relay as wheels: built by `./pants package`, strict metadata, installed as users do."""
from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.version import Version

from relay_testing.exports import fake_sha, write_export
from tests.example_repo import PANTS, REPO_ROOT, make_example_repo, pants_environment
from tests.relay_process import fetch, free_port
from tests.venvs import clean_environment, make_venv, uv_binary

PLUGIN = "export-dists"
RELAY = "export-dists-relay"
CORE = "export-dists-core"
UV_EXPORTER = "export-dists-uv"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both wheels, built the way the README says (`./pants package`), into a directory of their own."""
    out = tmp_path_factory.mktemp("wheels")
    # Pants writes only inside the build root: a directory of this run's own under dist/, moved out.
    distdir = Path("dist") / f"test-wheels-{secrets.token_hex(4)}"
    result = subprocess.run(
        [str(PANTS), "--no-pantsd", f"--pants-distdir={distdir}", "package", "pants-plugins:export-dists", "core:export-dists-core", "relay:dist",
         "uv-exporter:export-dists-uv"],
        cwd=REPO_ROOT, env=pants_environment(None), capture_output=True, text=True, timeout=1200,
    )
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        for wheel in (REPO_ROOT / distdir).glob("*.whl"):
            shutil.move(str(wheel), out / wheel.name)
    finally:
        shutil.rmtree(REPO_ROOT / distdir, ignore_errors=True)
    built = {}
    for wheel in out.glob("*.whl"):
        built[_metadata(wheel).name] = wheel
    assert set(built) == {PLUGIN, RELAY, CORE, UV_EXPORTER}, sorted(out.iterdir())
    return built


def _metadata(wheel: Path) -> Metadata:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        # validate=True: what pip >= 24.1, uv and PyPI's upload check reject, this rejects too.
        return Metadata.from_email(archive.read(name), validate=True)


def _files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


@pytest.mark.parametrize("dist", [PLUGIN, RELAY, CORE, UV_EXPORTER])
def test_wheel_metadata_is_complete_and_strictly_valid(wheels: dict[str, Path], dist: str) -> None:
    metadata = _metadata(wheels[dist])
    assert metadata.version == Version(wheels[dist].name.split("-")[1])
    assert metadata.summary and metadata.description and metadata.description_content_type == "text/markdown"
    assert metadata.license == "Apache-2.0"
    assert set(metadata.project_urls or {}) >= {"Homepage", "Documentation", "Source"}
    assert "License :: OSI Approved :: Apache Software License" in (metadata.classifiers or [])
    assert metadata.requires_python is not None and metadata.requires_python.contains("3.9")
    files = _files(wheels[dist])
    assert not [f for f in files if f.endswith(("_test.py", "conftest.py"))], files


def test_the_plugin_wheel_installs_in_every_supported_pants(wheels: dict[str, Path]) -> None:
    metadata = _metadata(wheels[PLUGIN])
    # No pantsbuild.pants requirement (not on any index since 2.18; register.py checks the version
    # at load time instead), nothing Pants does not already hold: only the core it imports, which
    # requires packaging (every Pants ships it).
    assert [Requirement(str(r)).name for r in metadata.requires_dist or []] == [CORE]
    # The Pythons Pants runs on: 3.9 (2.17-2.24), 3.11 (2.25-2.31), 3.14 (2.32 on).
    for python in ("3.9", "3.11", "3.14"):
        assert metadata.requires_python.contains(python), python  # type: ignore[union-attr]
    assert not metadata.requires_python.contains("3.8")  # type: ignore[union-attr]
    assert "export_dists/register.py" in _files(wheels[PLUGIN])
    assert "export_dists/pants_support.py" in _files(wheels[PLUGIN])


def test_the_relay_wheel_admits_the_newest_pythons_and_docs_list_its_requirements(wheels: dict[str, Path]) -> None:
    metadata = _metadata(wheels[RELAY])
    # Was <3.12: a Python 3.12 notebook (Colab) or 3.13 got "from versions: none".
    for python in ("3.9", "3.11", "3.12", "3.13"):
        assert metadata.requires_python.contains(python), (python, metadata.requires_python)  # type: ignore[union-attr]
    assert {"Programming Language :: Python :: 3.12", "Programming Language :: Python :: 3.13"} <= set(metadata.classifiers or [])
    # docs/relay.md says what the wheel needs (it left aiobotocore out).
    doc = (REPO_ROOT / "docs" / "relay.md").read_text()
    needs = doc[doc.index("The wheel requires") :].split(";", 1)[0]
    for requirement in metadata.requires_dist or []:
        assert f"`{Requirement(str(requirement)).name}`" in needs, (requirement, needs)


def test_the_plugin_wheel_requires_the_core_it_imports(wheels: dict[str, Path]) -> None:
    """The shared modules live in export-dists-core, once: the plugin pins it, and does not ship it."""
    metadata = _metadata(wheels[PLUGIN])
    requirements = {r.name: r for r in (Requirement(str(r)) for r in metadata.requires_dist or [])}
    assert str(requirements[CORE].specifier) == f"=={metadata.version}"
    assert not [f for f in _files(wheels[PLUGIN]) if f.startswith("export_dists_core/")]
    core_files = _files(wheels[CORE])
    assert {"export_dists_core/layout.py", "export_dists_core/wheel.py"} <= set(core_files)
    assert not [f for f in core_files if f.startswith("export_dists/")]
    core = {Requirement(str(r)).name for r in _metadata(wheels[CORE]).requires_dist or []}
    assert core == {"packaging"}, core


def test_the_relay_wheel_has_a_console_script(wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels[RELAY]) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        entry_points = archive.read(name).decode()
    assert re.search(r"^export-dists-relay = relay\.cli:main$", entry_points, re.MULTILINE), entry_points


def test_the_relay_wheel_and_pex_carry_every_package_and_no_test_support(wheels: dict[str, Path]) -> None:
    files = _files(wheels[RELAY])
    packages = {f.rsplit("/", 1)[0] for f in files if f.endswith("/__init__.py")}
    expected = {"relay", *(f"relay/{p}" for p in ("auth", "building", "cli", "index", "storage", "tools", "web"))}
    assert expected <= packages, sorted(packages)
    assert "relay/web/templates/_layout.html" in files
    assert not [f for f in files if f.startswith("relay_testing/") or f.endswith(("_test.py", "conftest.py"))]
    # The PEX is made from the same target: its sources, as Pants resolves them.
    result = subprocess.run(
        [str(PANTS), "--no-pantsd", "dependencies", "--transitive", "relay:relay"],
        cwd=REPO_ROOT, env=pants_environment(None), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sources = result.stdout.split()
    assert "relay/cli/serve.py" in sources and "relay/storage/bucket.py" in sources, sources
    assert not [s for s in sources if s.startswith("relay_testing") or s.endswith(("_test.py", "conftest.py"))]


def test_relay_wheel_installed_with_pip_serves_an_export(wheels: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    export = write_export(store, fake_sha(1), 1)
    # The newest Python here: the relay runs on what its Requires-Python admits.
    env = make_venv(tmp_path / "venv", "3.13")
    env.pip("install", str(wheels[RELAY]))
    script = env.path / "bin" / RELAY
    port = free_port()
    log = tmp_path / "relay.log"
    with open(log, "wb") as out:
        # cwd elsewhere: the relay must come from the venv, not from this checkout.
        process = subprocess.Popen(
            [str(script), "serve", "--store", str(store), "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path, env=clean_environment(), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            if process.poll() is not None:
                break
            try:
                if fetch(url + "/-/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        assert process.poll() is None, log.read_text()
        page = fetch(url + "/main/simple/monorepo-chain-a/")
        assert page.status == 200 and export.dists[0].filename.encode() in page.body
        wheel = fetch(url + f"/{export.sha}/{export.dists[0].filename}")
        assert wheel.status == 200 and len(wheel.body) == export.dists[0].size
        # The pages for people come from templates in the wheel.
        for path in ("/main/", "/main/-/monorepo-chain-a/"):
            html_page = fetch(url + path, accept="text/html")
            assert html_page.status == 200 and b"monorepo.chain.a" in html_page.body, (path, html_page.body[-2000:])
        where = subprocess.run(
            [str(env.python), "-c", "import relay; print(relay.__file__)"],
            cwd=tmp_path, env=clean_environment(), capture_output=True, text=True, check=True,
        )
        assert where.stdout.startswith(str(env.path)), where.stdout
    finally:
        process.terminate()
        process.wait(30)


def test_relay_wheel_runs_with_uvx(wheels: dict[str, Path], tmp_path: Path) -> None:
    uv = uv_binary()
    if uv is None:
        pytest.skip("uv is not installed")
    store = tmp_path / "store"
    store.mkdir()
    write_export(store, fake_sha(1), 1)
    python = make_venv(tmp_path / "py", "3.11").python
    result = subprocess.run(
        [uv, "tool", "run", "--python", str(python), "--from", str(wheels[RELAY]), RELAY, "check", str(store)],
        env={**clean_environment(), "UV_CACHE_DIR": str(tmp_path / "uv-cache"), "UV_TOOL_DIR": str(tmp_path / "tools")},
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"ok    {fake_sha(1)}"), result.stdout


def test_a_monorepo_loads_the_plugin_wheel_from_find_links(wheels: dict[str, Path], tmp_path: Path) -> None:
    """The README's way: no pythonpath, only `plugins = [...]` and a find-links to the wheel."""
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    for dist in (PLUGIN, CORE):
        (wheel_dir / wheels[dist].name).write_bytes(wheels[dist].read_bytes())
    version = wheels[PLUGIN].name.split("-")[1]
    repo = make_example_repo(tmp_path / "monorepo", commits=1)
    config = repo.path / "pants.toml"
    text, replaced = re.subn(r"(?m)^pythonpath = .*$", f'plugins = ["{PLUGIN}=={version}"]', config.read_text())
    assert replaced == 1
    config.write_text(text + f'\n[python-repos]\nfind_links = ["{wheel_dir.as_uri()}/"]\n')
    repo.commit("Load export-dists from its wheel", {"pants.toml": config.read_text()})
    result = repo.pants("export-dists", "::", timeout=1500)
    assert Path(result.stdout.strip().splitlines()[-1]) == repo.path / "dist" / "export-dists" / repo.head
    assert (repo.path / "dist" / "export-dists" / repo.head / "manifest.json").is_file()
    # The plugin came from the wheel: Pants' own venv cannot import it, and no pythonpath points here.
    pants_venv = subprocess.run([str(PANTS), "--bootstrap-venv"], capture_output=True, text=True, check=True)
    bare = subprocess.run([pants_venv.stdout.strip() + "/bin/python", "-c", "import export_dists"], capture_output=True)
    assert bare.returncode != 0
    assert "pants-plugins" not in config.read_text()


def test_the_uv_exporter_installs_with_one_command_and_exports_a_workspace(wheels: dict[str, Path], tmp_path: Path) -> None:
    """`pip install export-dists-uv` (the core found beside it, uv and packaging from the index), then
    its console script on a one-member workspace."""
    from export_dists_uv.testing import commit_all, git, write_files

    metadata = _metadata(wheels[UV_EXPORTER])
    assert {Requirement(str(r)).name for r in metadata.requires_dist or []} >= {CORE, "uv", "packaging"}
    venv = make_venv(tmp_path / "venv")
    venv.pip("install", "-q", "--find-links", str(wheels[UV_EXPORTER].parent), UV_EXPORTER)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_files(repo, {
        "pyproject.toml": '[tool.uv.workspace]\nmembers = ["one"]\n',
        "one/pyproject.toml": '[project]\nname = "one"\nversion = "1"\n[build-system]\nrequires = ["hatchling"]\n'
                              'build-backend = "hatchling.build"\n[tool.hatch.build.targets.wheel]\npackages = ["one"]\n',
        "one/one/__init__.py": "",
    })
    sha = commit_all(repo, "one member")
    result = subprocess.run(
        [str(venv.path / "bin" / "export-dists-uv"), str(repo), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, env=clean_environment(), timeout=600,
    )
    assert result.returncode == 0, result.stderr
    export = Path(result.stdout.strip())
    assert export == repo / "dist" / "export-dists" / sha
    # The backend's tag (hatchling: py2.py3 without requires-python), the content version.
    assert [w.name.split("-")[:2] for w in export.glob("*.whl")] == [["one", f"0.1+g{sha[:12]}"]]

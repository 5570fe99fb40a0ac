"""A uv workspace served by the relay in pull mode: detected from the repository, built by
export-dists-uv on the first request, installed with pip, uv and pex."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.notebook import ca_bundle
from tests.relay_process import RelayProcess
from tests.venvs import clean_environment, make_venv, run, uv_binary

import export_dists_core
import export_dists_uv
from export_dists_uv.testing import commit_all, git, sample_workspace, write_files

PYTHONPATH = (Path(export_dists_uv.__file__).parent.parent, Path(export_dists_core.__file__).parent.parent)
MEMBERS = ("acme", "acme-core", "acme-utils", "acme-dyn", "acme-leaf", "acme-tmpl")
JSON = "application/vnd.pypi.simple.v1+json"
IMPORT = "import acme, acme_dyn, acme_leaf; print(acme_dyn.UTILS)"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RelayProcess, Path]]:
    tmp = tmp_path_factory.mktemp("uv-relay")
    repo = sample_workspace(tmp / "repo")
    store = tmp / "store"
    store.mkdir()
    # The default builder (warm: one long-lived worktree), as a user gets it.
    relay = RelayProcess(store, "--repo", str(repo), "--default-ref", "main", pythonpath=PYTHONPATH)
    try:
        yield relay, repo
    finally:
        relay.stop()


def test_the_relay_detects_the_uv_workspace_and_builds_it_on_request(served: tuple[RelayProcess, Path]) -> None:
    relay, repo = served
    page = relay.get("/main/simple/", timeout=600)
    assert page.status == 200, page.body
    for member in MEMBERS:
        assert f'href="{member}/"'.encode() in page.body
    assert "building commits with uv" in relay.log.read_text()
    sha = git(repo, "rev-parse", "HEAD")
    files = json.loads(relay.get(f"/{sha}/simple/acme-utils/", accept=JSON).body)["files"]
    assert [f["filename"] for f in files] == [f"acme_utils-0.1+g{sha[:12]}-py3-none-any.whl"]


def test_pip_installs_through_the_relay_and_pip_check_is_clean(served: tuple[RelayProcess, Path], tmp_path: Path) -> None:
    relay, _ = served
    venv = make_venv(tmp_path / "venv")
    venv.pip("install", "-q", "--index-url", f"{relay.url}/main/simple/", *MEMBERS, "acme-utils[cli]")
    venv.pip("check")
    assert venv.run("-c", IMPORT).stdout == "core+utils\n"


def test_uv_installs_through_the_relay(served: tuple[RelayProcess, Path], tmp_path: Path) -> None:
    relay, _ = served
    uv = uv_binary()
    assert uv, "uv is needed (3rdparty/python/requirements.txt)"
    venv = make_venv(tmp_path / "venv")
    subprocess.run(
        [uv, "pip", "install", "-q", "--no-cache", "--python", str(venv.python), "--index-url", f"{relay.url}/main/simple/", "acme", "acme-dyn", "acme-leaf"],
        check=True, env=clean_environment(),
    )
    venv.pip("check")
    assert venv.run("-c", IMPORT).stdout == "core+utils\n"


def test_pex_builds_from_the_relay(served: tuple[RelayProcess, Path], tmp_path: Path) -> None:
    relay, _ = served
    pex = tmp_path / "acme.pex"
    bundle = ca_bundle()
    # --no-pypi: pex adds PyPI to the indexes it is given, and PyPI has projects named acme.
    run([sys.executable, "-m", "pex", "--no-pypi", "--index-url", f"{relay.url}/main/simple/", "acme", "acme-dyn", "acme-leaf",
         "-o", str(pex), *(["--cert", bundle] if bundle else [])])
    assert run([sys.executable, str(pex), "-c", IMPORT]).stdout == "core+utils\n"


def test_a_new_commit_moves_the_changed_member_and_its_dependents_only(served: tuple[RelayProcess, Path], tmp_path: Path) -> None:
    relay, repo = served
    before = git(repo, "rev-parse", "HEAD")
    write_files(repo, {"packages/utils/src/acme_utils/__init__.py": "from acme_core import VALUE\n\nUTILS = VALUE + '+utils2'\n"})
    after = commit_all(repo, "utils")
    versions = {}
    for member in MEMBERS:
        response = relay.get(f"/{after}/simple/{member}/", accept=JSON, timeout=600)
        assert response.status == 200, response.body
        versions[member] = json.loads(response.body)["versions"]
    moved = {m for m, v in versions.items() if v == [f"0.2+g{after[:12]}"]}
    assert moved == {"acme-utils", "acme-dyn", "acme-tmpl"}
    assert versions["acme-core"] == versions["acme"] == versions["acme-leaf"] == [f"0.1+g{before[:12]}"]


def test_a_directory_with_neither_pants_nor_a_uv_workspace_is_refused_at_start(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_files(repo, {"pyproject.toml": '[project]\nname = "x"\n'})
    commit_all(repo, "not a workspace")
    (tmp_path / "store").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "relay", "serve", "--store", str(tmp_path / "store"), "--repo", str(repo), "--port", "0"],
        capture_output=True, text=True, env={**clean_environment(), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}, timeout=60,
    )
    assert result.returncode != 0
    assert "neither a pants.toml (a Pants repository) nor a pyproject.toml with [tool.uv.workspace]" in result.stderr

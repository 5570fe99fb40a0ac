"""The uv exporter on a real workspace: real builds by four backends, versions, pins, bytes, errors."""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from export_dists_uv.testing import commit_all, git, run_exporter, sample_workspace, uv_environment, write_files

CORE, UTILS, DYN, LEAF, TMPL, ROOT = "acme-core", "acme-utils", "acme-dyn", "acme-leaf", "acme-tmpl", "acme"


def manifest(export: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((export / "manifest.json").read_text())
    return document


def dists(export: Path) -> dict[str, dict[str, Any]]:
    return {d["project"]: d for d in manifest(export)["dists"]}


def wheel_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def export(repo: Path, tmp: Path, *args: str, cache: str = "cache") -> Path:
    run = run_exporter(repo, *args, cache_dir=tmp / cache, output_dir=tmp / "out")
    assert run.code == 0, run.stderr
    return Path(run.stdout.strip())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_workspace(tmp_path_factory.mktemp("ws") / "repo")


@pytest.fixture(scope="module")
def first(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The first export (cold: every member built) and its temporary directory."""
    tmp = tmp_path_factory.mktemp("first")
    return export(workspace, tmp), tmp


def test_one_wheel_per_package_member_and_the_root_project(first: tuple[Path, Path], workspace: Path) -> None:
    out, _ = first
    document = manifest(out)
    sha = git(workspace, "rev-parse", "HEAD")
    assert (document["format"], document["version_scheme"], document["sha"], document["count"]) == (2, "content", sha, 1)
    assert document["namespace"] == "acme" and document["branches"] == ["main"] and not document["dirty"]
    # The member with no [build-system] is virtual, as uv treats it: not a package.
    assert sorted(dists(out)) == [ROOT, CORE, DYN, LEAF, TMPL, UTILS]
    version = f"0.1+g{sha[:12]}"
    for entry in document["dists"]:
        assert entry["version"] == version and entry["origin"] == sha and len(entry["fingerprint"]) == 64
        assert (out / entry["filename"]).read_bytes() and (out / "simple" / entry["project"] / "index.html").is_file()
        assert hashlib.sha256((out / entry["filename"]).read_bytes()).hexdigest() == entry["sha256"]
    assert {d: dists(out)[d]["address"] for d in (ROOT, CORE)} == {ROOT: ".", CORE: "packages/core"}


def test_pins_workspace_members_and_keeps_extras_markers_and_the_rest(first: tuple[Path, Path]) -> None:
    out, _ = first
    found = dists(out)
    version = found[CORE]["version"]
    assert found[UTILS]["requires_dist"] == [
        f'acme-core[fast]=={version}; python_version >= "3.8"',
        'requests>=2; python_version < "3"',
        f'acme-core=={version}; extra == "cli"',
    ]
    assert found[ROOT]["requires_dist"] == [f"acme-core=={version}"]
    assert found[DYN]["requires_dist"] == [f"acme-utils=={version}"]
    # Templated pins (uv-dynamic-versioning's `{{ version }}` in dynamic dependencies) name each
    # member's own version, as static ones do.
    assert found[TMPL]["requires_dist"] == [f"acme-core=={version}", f'acme-utils[cli]=={version}; python_version >= "3.8"']
    assert found[CORE]["requires_python"] == ">=3.8"


def test_the_wheel_is_stamped_recorded_and_self_consistent(first: tuple[Path, Path]) -> None:
    out, _ = first
    entry = dists(out)[DYN]
    files = wheel_files(out / entry["filename"])
    dist_info = f"acme_dyn-{entry['version']}.dist-info"
    # The dynamic version came from the content version, into the file hatch-vcs writes too.
    assert entry["version"] in files["acme_dyn/_version.py"].decode()
    assert f"Version: {entry['version']}" in files[f"{dist_info}/METADATA"].decode()
    assert files[f"{dist_info}/METADATA"] == (out / f"{entry['filename']}.metadata").read_bytes()
    provenance = json.loads(files[f"{dist_info}/export_dists.json"])
    assert provenance == {
        "address": "packages/dyn", "dirty": False, "fingerprint": entry["fingerprint"],
        "namespace": "acme", "sha": entry["origin"], "version": entry["version"],
    }
    rows = list(csv.reader(io.StringIO(files[f"{dist_info}/RECORD"].decode())))
    assert {row[0] for row in rows} == set(files)
    for path, digest, size in rows:
        if path.endswith("/RECORD"):
            continue
        expected = base64.urlsafe_b64encode(hashlib.sha256(files[path]).digest()).rstrip(b"=").decode()
        assert (digest, int(size)) == (f"sha256={expected}", len(files[path]))


def test_installs_with_pip_and_pip_check_is_clean(first: tuple[Path, Path], tmp_path: Path) -> None:
    out, _ = first
    env = uv_environment()
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    pip = [str(tmp_path / "venv" / "bin" / "python"), "-m", "pip"]
    subprocess.run([*pip, "install", "-q", "--no-index", "--find-links", str(out), "acme", "acme-dyn", "acme-utils[cli]", "acme-leaf", "acme-tmpl"], check=True, env=env)
    subprocess.run([*pip, "check"], check=True, env=env)
    code = "import acme, acme_dyn; print(acme_dyn.UTILS)"
    assert subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True).stdout == "core+utils\n"


def test_byte_reproducible_from_a_cold_cache(first: tuple[Path, Path], workspace: Path, tmp_path: Path) -> None:
    out, _ = first
    again = export(workspace, tmp_path, cache="other-cache")
    assert (again / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()
    for entry in manifest(out)["dists"]:
        assert (again / entry["filename"]).read_bytes() == (out / entry["filename"]).read_bytes()


def test_an_unchanged_commit_builds_nothing(first: tuple[Path, Path], workspace: Path) -> None:
    _, tmp = first
    run = run_exporter(workspace, cache_dir=tmp / "cache", output_dir=tmp / "out")
    assert run.code == 0 and "0 built, 6 from the cache" in run.stderr and "unchanged (already exported)" in run.stderr, run.stderr


def test_explain_says_where_a_version_and_each_pin_come_from(first: tuple[Path, Path], workspace: Path) -> None:
    _, tmp = first
    run = run_exporter(workspace, "--explain", "packages/utils", cache_dir=tmp / "cache", output_dir=tmp / "out")
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "dist:     acme_utils" and lines[1].startswith("version:  0.1+g")
    assert "member:   packages/utils  (build backend setuptools.build_meta)" in lines
    assert any("acme_utils/__init__.py" in line for line in lines)
    assert sum("[tool.uv.sources] acme-core = { workspace = true }" in line for line in lines) == 2


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return sample_workspace(tmp_path / "repo")


def test_a_leaf_change_moves_only_the_leaf_and_a_core_change_moves_its_dependents(repo: Path, tmp_path: Path) -> None:
    before = export(repo, tmp_path)
    write_files(repo, {"packages/leaf/acme_leaf.py": '"""A leaf nobody depends on."""\n__version__ = "3.1"\n'})
    commit_all(repo, "leaf")
    after_leaf = export(repo, tmp_path)
    old, new = dists(before), dists(after_leaf)
    assert new[LEAF]["version"].startswith("0.2+g") and new[LEAF]["sha256"] != old[LEAF]["sha256"]
    for project in (ROOT, CORE, UTILS, DYN, TMPL):
        assert (new[project]["version"], new[project]["sha256"]) == (old[project]["version"], old[project]["sha256"])
        assert (after_leaf / new[project]["filename"]).stat().st_ino == (before / old[project]["filename"]).stat().st_ino

    write_files(repo, {"packages/core/src/acme_core/__init__.py": "VALUE = 'core2'\n"})
    commit_all(repo, "core")
    after_core = export(repo, tmp_path)
    final = dists(after_core)
    for project in (ROOT, CORE, UTILS, DYN, TMPL):
        assert final[project]["version"].startswith("0.3+g"), project
    assert final[LEAF]["version"] == new[LEAF]["version"] and final[LEAF]["sha256"] == new[LEAF]["sha256"]
    assert final[UTILS]["requires_dist"][0] == f'acme-core[fast]=={final[CORE]["version"]}; python_version >= "3.8"'


def test_a_dirty_tree_is_refused_or_exported_as_dirty(repo: Path, tmp_path: Path) -> None:
    write_files(repo, {"packages/leaf/acme_leaf.py": '"""Changed."""\n__version__ = "4"\n'})
    refused = run_exporter(repo, cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    assert refused.code == 1 and "uncommitted changes (packages/leaf/acme_leaf.py)" in refused.stderr
    out = export(repo, tmp_path, "--allow-dirty")
    sha = git(repo, "rev-parse", "HEAD")
    assert out.name == f"{sha}.dirty" and manifest(out)["dirty"] is True
    found = dists(out)
    assert found[LEAF]["version"] == f"0.1+g{sha[:12]}.dirty" and found[LEAF]["dirty"] is True
    assert found[CORE]["version"] == f"0.1+g{sha[:12]}" and found[CORE]["dirty"] is False


def test_not_a_uv_workspace(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\n')
    run = run_exporter(tmp_path, cache_dir=tmp_path / "cache")
    assert run.code == 1 and "has no [tool.uv.workspace] table" in run.stderr and "Traceback" not in run.stderr


def test_a_member_that_fails_to_build_names_it_shows_its_log_and_writes_nothing(repo: Path, tmp_path: Path) -> None:
    write_files(repo, {"packages/utils/setup.py": "raise SystemExit('utils cannot be built today')\n"})
    commit_all(repo, "break utils")
    run = run_exporter(repo, cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    assert run.code == 1 and "Traceback (most recent call last)" not in run.stderr.splitlines()[0]
    assert "building the workspace member acme_utils (packages/utils, backend setuptools.build_meta) failed" in run.stderr
    assert "utils cannot be built today" in run.stderr and "nothing was written" in run.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_dependency_cycle_between_members_is_refused(repo: Path, tmp_path: Path) -> None:
    text = (repo / "packages/core/pyproject.toml").read_text()
    write_files(repo, {"packages/core/pyproject.toml": text.replace('requires-python = ">=3.8"', 'requires-python = ">=3.8"\ndependencies = ["acme-dyn"]\n\n[tool.uv.sources]\nacme-dyn = { workspace = true }')})
    commit_all(repo, "cycle")
    run = run_exporter(repo, cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    assert run.code == 1 and "dependency cycle between members" in run.stderr, run.stderr
    assert "3 members" in run.stderr and "acme-core (packages/core/pyproject.toml) -> acme-dyn" in run.stderr

"""Tests for export versions from git: `0.<first-parent count>+g<short sha>`, dirty and bad trees."""
from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from pathlib import Path, PurePath

import pytest

from export_dists.conftest import FIRST_COMMIT_EPOCH, GIT_ENV, Repo
from export_dists.versioning import (
    _READ_COMMIT,
    ExportCommit,
    ExportVersionError,
    _sections,
    pants_outputs,
    render_version,
)
from pants.core.util_rules.distdir import DistDir
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError

FILES = {"src/python/a/BUILD": "python_sources()", "src/python/a/m.py": "X = 1\n"}
SHA = "0123456789abcdef0123456789abcdef01234567"


def _commit(count: int = 7, dirty: bool = False) -> ExportCommit:
    return ExportCommit(
        sha=SHA,
        count=count,
        commit_time="2025-11-25T12:00:00+00:00",
        commit_epoch=FIRST_COMMIT_EPOCH,
        dirty=dirty,
        branches=("main",),
        tags=(),
    )


def test_render_version() -> None:
    assert render_version("0.{count}+g{short_sha}", _commit()) == "0.7+g0123456789ab"
    assert render_version("0.{count}+g{short_sha}", _commit(dirty=True)) == "0.7+g0123456789ab.dirty"
    assert render_version("1.{count}", _commit(dirty=True)) == "1.7+dirty"
    assert render_version("0.{count}+{sha}", _commit()) == f"0.7+{SHA}"


@pytest.mark.parametrize(
    "template, error",
    [("0.{number}", "not a valid template"), ("0.{count", "not a valid template"), ("v{count}-{sha}", "not a valid\nPEP 440")],
)
def test_bad_templates(template: str, error: str) -> None:
    with pytest.raises(ExportVersionError) as e:
        render_version(template, _commit())
    assert template in str(e.value)
    assert " ".join(error.split()) in " ".join(str(e.value).split())


def test_version_from_the_first_parent_count_and_sha(repo: Repo) -> None:
    repo.commit(FILES, message="first")
    sha = repo.commit({"src/python/a/m.py": "X = 2\n"}, message="second")
    export = repo.export(Address("src/python/a"))
    assert export.info.sha == sha
    assert export.info.count == 2
    assert export.info.version == f"0.2+g{sha[:12]}"
    assert [d.version for d in export.dists] == [export.info.version]
    assert export.dists[0].wheel.filename == f"monorepo_src_python_a-0.2+g{sha[:12]}-py3-none-any.whl"
    assert export.info.branches == ("main",) and export.info.tags == ()
    assert export.info.commit_time == "2025-11-25T12:01:00+00:00"
    assert not export.info.dirty and export.info.directory_name == sha


def test_count_follows_the_first_parent_only(repo: Repo) -> None:
    repo.commit(FILES, message="first")
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit({"src/python/a/f1.py": ""}, message="f1")
    repo.commit({"src/python/a/f2.py": ""}, message="f2")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature", epoch=FIRST_COMMIT_EPOCH + 3600)
    repo.git("tag", "v1")
    repo.new_session()
    info = repo.export(Address("src/python/a")).info
    assert info.count == 2  # first, merge: not the two commits of the branch
    assert info.version.startswith("0.2+g")
    assert info.tags == ("v1",)


def test_dirty_tree_is_refused(repo: Repo) -> None:
    repo.commit(FILES)
    repo.write({"src/python/a/m.py": "X = 'changed'\n", "src/python/a/new.py": ""})
    repo.new_session()
    with pytest.raises(ExecutionError) as e:
        repo.export(Address("src/python/a"))
    message = str(e.value)
    assert "ExportVersionError" in message
    assert "uncommitted changes" in message and "--export-dists-allow-dirty" in message
    assert "src/python/a/m.py" in message and "src/python/a/new.py" in message


def test_dirty_tree_allowed_when_asked(repo: Repo) -> None:
    sha = repo.commit(FILES)
    repo.write({"src/python/a/m.py": "X = 'changed'\n"})
    repo.new_session()
    export = repo.export(Address("src/python/a"), allow_dirty=True)
    assert export.info.dirty
    assert export.info.version == f"0.1+g{sha[:12]}.dirty"
    assert export.info.directory_name == f"{sha}.dirty"
    assert export.dists[0].version.endswith(".dirty")
    with zipfile.ZipFile(io.BytesIO(export.dists[0].wheel.content)) as archive:
        assert archive.read("a/m.py") == b"X = 'changed'\n"  # the work tree, not the commit
        provenance = json.loads(archive.read(f"monorepo_src_python_a-{export.info.version}.dist-info/export_dists.json"))
    assert provenance["dirty"] is True and provenance["sha"] == sha


def test_pants_own_outputs_do_not_make_a_tree_dirty(repo: Repo) -> None:
    repo.commit(FILES)
    os.makedirs(os.path.join(repo.root, "dist", "export-dists"))
    with open(os.path.join(repo.root, "dist", "export-dists", "x"), "w") as f:
        f.write("")
    repo.new_session()
    assert not repo.export(Address("src/python/a")).info.dirty


def test_pants_own_outputs_in_a_build_root_below_the_top_of_the_repository(tmp_path: Path) -> None:
    # git prints paths from the top of the work tree (`mono/.pants.d/`); the script hands the
    # outputs to git as pathspecs, which git resolves from the build root.
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env)
    root = tmp_path / "mono"
    for path in ("src/m.py", ".pants.d/run/log", "dist/export-dists/x", "build/out/y", ".pids/p"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("")
    subprocess.run(["git", "-C", str(tmp_path), "add", "mono/src"], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-qm", "c"], check=True, env=env)

    def status(*outputs: str) -> list[str]:
        argv = ["bash", "-c", _READ_COMMIT, "read-commit", "git", str(root), *outputs]
        result = subprocess.run(argv, check=True, env=env, capture_output=True, text=True)
        return [line for line in _sections(result.stdout)[1]["status"] if line]

    outputs = pants_outputs(str(root), DistDir(PurePath("dist")), "build/out")
    assert status(*outputs) == []
    (root / "build/other").write_text("")
    (root / "src/m.py").write_text("changed")
    assert status(*outputs) == [" M mono/src/m.py", "?? mono/build/"]


def test_an_output_dir_beside_the_build_root_or_outside_the_repository(tmp_path: Path) -> None:
    env = {**os.environ, **GIT_ENV}
    top = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(top)], check=True, env=env)
    root = top / "mono"
    for path in ("mono/src/m.py", "exports/0123/manifest.json", "notes.txt"):
        (top / path).parent.mkdir(parents=True, exist_ok=True)
        (top / path).write_text("")
    subprocess.run(["git", "-C", str(top), "add", "mono/src", "notes.txt"], check=True, env=env)
    subprocess.run(["git", "-C", str(top), "commit", "-qm", "c"], check=True, env=env)

    def status(output_dir: str) -> list[str]:
        outputs = pants_outputs(str(root), DistDir(PurePath("dist")), output_dir)
        argv = ["bash", "-c", _READ_COMMIT, "read-commit", "git", str(root), *outputs]
        result = subprocess.run(argv, check=True, env=env, capture_output=True, text=True)
        return [line for line in _sections(result.stdout)[1]["status"] if line]

    # In the repository, beside the build root: given relative to it, or absolute.
    assert status("../exports") == []
    assert status(str(top / "exports")) == []
    # Outside the repository: git does not see it, and the rest of the tree still counts.
    (top / "notes.txt").write_text("changed")
    assert status(str(tmp_path / "elsewhere")) == [" M notes.txt", "?? exports/"]


def test_not_a_git_repository(repo: Repo) -> None:
    repo.write(FILES)
    with pytest.raises(ExecutionError) as e:
        repo.export(Address("src/python/a"))
    message = str(e.value)
    assert "ExportVersionError" in message
    assert "needs a git checkout" in message and repo.root in message
    assert "git init" in message


def test_shallow_clone_is_refused(repo: Repo) -> None:
    sha = repo.commit(FILES)
    # What `git clone --depth 1` leaves: the commit is a graft without parents.
    with open(os.path.join(repo.root, ".git", "shallow"), "w") as f:
        f.write(f"{sha}\n")
    repo.new_session()
    with pytest.raises(ExecutionError) as e:
        repo.export(Address("src/python/a"))
    assert "shallow clone" in str(e.value) and "git fetch --unshallow" in str(e.value)


def test_bad_version_template_in_an_export(repo: Repo) -> None:
    repo.commit(FILES)
    with pytest.raises(ExecutionError, match="version_template"):
        repo.export(Address("src/python/a"), version_template="{count}.{oops}")

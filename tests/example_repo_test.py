"""Tests for tests/example_repo.py that need git but never start Pants."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.example_repo import (
    EXAMPLE_DIR,
    HISTORY_MODULE,
    ExampleRepoError,
    make_example_repo,
)


def _tracked(repo_path: Path) -> list[str]:
    result = subprocess.run(
        ["git", "ls-files"], cwd=repo_path, capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


def test_make_example_repo_has_history_and_a_clean_tree(tmp_path: Path) -> None:
    repo = make_example_repo(tmp_path / "repo")

    assert len(repo.shas) == 2
    assert repo.git("rev-list", "--reverse", "HEAD").split() == repo.shas
    assert repo.git("branch", "--show-current") == "main"
    assert repo.git("status", "--porcelain") == ""
    assert repo.git("diff", "--name-only", repo.shas[0], repo.shas[1]) == HISTORY_MODULE

    tracked = _tracked(repo.path)
    assert "pants.toml" in tracked
    assert "3rdparty/python/default.lock" in tracked
    assert "src/python/wordcount/app/main.py" in tracked
    assert not [name for name in tracked if ".git" in Path(name).parts]
    assert not [name for name in tracked if name.split("/")[0] in {"dist", ".pants.d", ".pids"}]
    assert not [name for name in tracked if "__pycache__" in name]


def test_more_commits_keep_one_history_line(tmp_path: Path) -> None:
    repo = make_example_repo(tmp_path / "repo", commits=4)

    assert len(repo.git("log", "--format=%H").split()) == 4
    module = (repo.path / HISTORY_MODULE).read_text(encoding="utf-8")
    assert module.count("# Example history: commit") == 1
    assert "# Example history: commit 4." in module


def test_commit_writes_and_deletes(tmp_path: Path) -> None:
    repo = make_example_repo(tmp_path / "repo")

    sha = repo.commit(
        "Change a leaf, drop the samples",
        {"libs/py/textkit/base/extra.py": '"""New."""\n', "data/samples/alice.txt": None},
    )

    assert repo.shas[-1] == sha == repo.head == repo.git("rev-parse", "HEAD")
    assert len(repo.shas) == 3
    assert repo.git("status", "--porcelain") == ""
    tracked = _tracked(repo.path)
    assert "libs/py/textkit/base/extra.py" in tracked
    assert "data/samples/alice.txt" not in tracked

    with pytest.raises(ExampleRepoError, match="changes nothing"):
        repo.commit("No-op", {"libs/py/textkit/base/extra.py": '"""New."""\n'})
    with pytest.raises(ExampleRepoError, match="does not exist"):
        repo.commit("Delete twice", {"data/samples/alice.txt": None})
    with pytest.raises(ExampleRepoError, match="not a file path inside"):
        repo.commit("Escape", {"../outside.txt": "x"})


def test_copy_leaves_out_pants_output_and_nested_git(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(EXAMPLE_DIR, source, ignore=shutil.ignore_patterns("__pycache__"))
    junk_files = (
        "dist/export-dists/x.whl",
        ".pants.d/run.log",
        ".pids/abc/pantsd/pid",
        "libs/py/textkit/base/__pycache__/tokens.cpython-39.pyc",
        "libs/.git/HEAD",
    )
    for junk in junk_files:
        (source / junk).parent.mkdir(parents=True, exist_ok=True)
        (source / junk).write_text("junk\n", encoding="utf-8")

    repo = make_example_repo(tmp_path / "repo", source=source)

    for junk_dir in ("dist", ".pants.d", ".pids", "libs/.git", "libs/py/textkit/base/__pycache__"):
        assert not (repo.path / junk_dir).exists()
    assert repo.git("status", "--porcelain") == ""


def test_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "file").write_text("x", encoding="utf-8")
    with pytest.raises(ExampleRepoError, match="not an empty directory"):
        make_example_repo(tmp_path / "repo")

"""Tests for the `export-dists` goal: the export directory it writes, its summary, and --explain."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from export_dists.conftest import ARGS, ENV, ENV_INHERIT, Repo
from export_dists.goal import ExportDists
from pants.engine.internals.scheduler import ExecutionError
from pants.testutil.rule_runner import GoalRuleResult

MONOREPO = {
    "3rdparty/BUILD": 'python_requirement(name="requests", requirements=["requests>=2; python_version<\'3.12\'"])',
    "src/python/a/b/BUILD": (
        'python_sources(dependencies=["libs/d", "!src/python/c/x.py"])\n'
        'python_tests(name="tests")\n'
        'files(name="scripts", sources=["run.sh"])'
    ),
    "src/python/a/b/mod.py": "import requests\nimport c.y\nimport c.x\n",
    "src/python/a/b/mod_test.py": "import a.b.mod\n",
    "src/python/a/b/run.sh": "#!/bin/sh\n",
    "src/python/a/b/notes.txt": "nobody owns this file\n",
    "src/python/c/BUILD": "python_sources()",
    "src/python/c/x.py": "",
    "src/python/c/y.py": "",
    "libs/d/BUILD": "python_sources()",
    "libs/d/d.py": "",
}


def run(repo: Repo, *args: str) -> GoalRuleResult:
    return repo.rule_runner.run_goal_rule(
        ExportDists, global_args=ARGS, args=args, env=ENV, env_inherit=ENV_INHERIT
    )


def test_export_writes_the_directory_and_a_summary(repo: Repo, tmp_path: Path) -> None:
    sha = repo.commit(MONOREPO)
    out = tmp_path / "exports"
    result = run(repo, f"--export-dists-output-dir={out}", "::")
    assert result.exit_code == 0, result.stderr
    version = f"0.1+g{sha[:12]}"
    assert result.stdout.strip() == str(out / sha)
    assert f"export-dists: 3 dists at version {version} (commit {sha[:12]}) wrote: {out / sha}" in result.stderr

    assert sorted(os.listdir(out)) == [sha]
    manifest = json.loads((out / sha / "manifest.json").read_text())
    assert manifest["format"] == 2 and manifest["sha"] == sha and manifest["version"] == version
    assert manifest["count"] == 1 and manifest["dirty"] is False and manifest["branches"] == ["main"]
    assert [(d["name"], d["address"]) for d in manifest["dists"]] == [
        ("monorepo.libs.d", "libs/d:d"),
        ("monorepo.src.python.a.b", "src/python/a/b:b"),
        ("monorepo.src.python.c", "src/python/c:c"),
    ]
    b = manifest["dists"][1]
    assert b["requires_dist"] == [
        f"monorepo.libs.d=={version}",
        f"monorepo.src.python.c=={version}",
        'requests>=2; python_version < "3.12"',
    ]
    assert b["requires_python"] == "<3.12,>=3.9"
    for dist in manifest["dists"]:
        assert (out / sha / dist["filename"]).stat().st_size == dist["size"]
        assert (out / sha / f"{dist['filename']}.metadata").stat().st_size == dist["metadata_size"]
        assert (out / sha / "simple" / dist["project"] / "index.html").is_file()
    assert (out / sha / "simple" / "index.html").is_file()

    again = run(repo, f"--export-dists-output-dir={out}", "::")
    assert again.exit_code == 0
    assert "unchanged (already exported)" in again.stderr
    assert sorted(os.listdir(out)) == [sha]


def test_one_directory_exports_its_closure_into_dist_by_default(repo: Repo) -> None:
    sha = repo.commit(MONOREPO)
    result = run(repo, "src/python/a/b")
    assert result.exit_code == 0, result.stderr
    assert "3 dists (1 requested + 2 first-party dependencies)" in result.stderr
    assert f"wrote: dist/export-dists/{sha}" in result.stderr
    assert (Path(repo.root) / "dist" / "export-dists" / sha / "manifest.json").is_file()
    # The export itself does not make the tree dirty for the next run.
    assert run(repo, "src/python/a/b").exit_code == 0


def test_dirty_export_goes_to_its_own_directory(repo: Repo, tmp_path: Path) -> None:
    sha = repo.commit(MONOREPO)
    repo.write({"src/python/c/y.py": "CHANGED = True\n"})
    with pytest.raises(ExecutionError, match="uncommitted changes"):
        run(repo, f"--export-dists-output-dir={tmp_path}", "::")
    assert not any(tmp_path.iterdir())
    result = run(repo, f"--export-dists-output-dir={tmp_path}", "--export-dists-allow-dirty", "::")
    assert result.exit_code == 0
    assert "DIRTY" in result.stderr
    assert sorted(os.listdir(tmp_path)) == [f"{sha}.dirty"]
    manifest = json.loads((tmp_path / f"{sha}.dirty" / "manifest.json").read_text())
    assert manifest["dirty"] is True and manifest["version"].endswith(".dirty")


def test_no_exportable_targets(repo: Repo, tmp_path: Path) -> None:
    repo.commit({"data/BUILD": 'files(sources=["*.txt"])', "data/a.txt": ""})
    result = run(repo, f"--export-dists-output-dir={tmp_path}", "data")
    assert result.exit_code == 1
    assert "Nothing to export" in result.stderr
    assert not any(tmp_path.iterdir())


def test_explain(repo: Repo, tmp_path: Path) -> None:
    sha = repo.commit(MONOREPO)
    result = run(repo, f"--export-dists-output-dir={tmp_path}", "--export-dists-explain=src/python/a/b:b", "::")
    assert result.exit_code == 0, result.stderr
    assert not any(tmp_path.iterdir())  # explaining writes nothing
    out = result.stdout
    version = f"0.1+g{sha[:12]}"
    assert "dist:     monorepo.src.python.a.b" in out
    assert f"version:  {version}  (commit {sha})" in out
    assert "a/b/mod.py    <- src/python/a/b/mod.py  [src/python/a/b/mod.py]" in out
    lines = out.splitlines()

    def edges_of(requirement: str) -> list[str]:
        start = lines.index(f"  {requirement}")
        found = []
        for line in lines[start + 1 :]:
            if not line.startswith("      "):
                break
            found.append(line.strip())
        return found

    assert edges_of(f"monorepo.libs.d=={version}") == [
        "explicit dependency: src/python/a/b/mod.py -> libs/d:d"
    ]
    assert edges_of(f"monorepo.src.python.c=={version}") == [
        "inferred import: src/python/a/b/mod.py -> src/python/c/y.py"
    ]
    assert edges_of('requests>=2; python_version < "3.12"') == [
        "inferred import: src/python/a/b/mod.py -> 3rdparty:requests"
    ]
    assert "excluded with !: src/python/a/b/mod.py -> !src/python/c/x.py" in out
    assert "dependencies left out" not in out
    # Files beside the dist's files that no exported dist holds are named, with their owner.
    warning = out[out.index("WARNING: files beside this dist") :]
    assert "src/python/a/b/notes.txt  (owned by no target)" in warning
    assert "src/python/a/b/run.sh  (owned by src/python/a/b/run.sh:scripts)" in warning
    assert "src/python/a/b/mod_test.py  (owned by src/python/a/b/mod_test.py:tests)" in warning
    assert "mod.py " not in warning


def test_explain_by_directory_and_by_dist_name(repo: Repo) -> None:
    repo.commit(MONOREPO)
    for wanted in ("src/python/a/b", "monorepo.src.python.a.b", "monorepo-src-python-a-b", "src/python/a/b/mod.py"):
        result = run(repo, f"--export-dists-explain={wanted}", "::")
        assert result.exit_code == 0, (wanted, result.stderr)
        assert "dist:     monorepo.src.python.a.b" in result.stdout


def test_explain_unknown(repo: Repo) -> None:
    repo.commit(MONOREPO)
    with pytest.raises(ExecutionError) as e:
        run(repo, "--export-dists-explain=src/python/nowhere", "::")
    message = str(e.value)
    assert "ExplainError" in message and "'src/python/nowhere'" in message
    assert "monorepo.src.python.a.b" in message  # the dists that are there


def test_export_of_a_parametrized_target(repo: Repo, tmp_path: Path) -> None:
    repo.commit(
        {
            "src/python/multi/BUILD": 'python_sources(interpreter_constraints=parametrize(py39=["CPython>=3.9"], py310=["CPython>=3.10"]))',
            "src/python/multi/m.py": "",
        }
    )
    out = tmp_path / "exports"
    result = run(repo, f"--export-dists-output-dir={out}", "src/python/multi::")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(next(out.glob("*/manifest.json")).read_text())
    assert [(d["name"], d["address"]) for d in manifest["dists"]] == [
        ("monorepo.src.python.multi.py310", "src/python/multi@interpreter_constraints=py310"),
        ("monorepo.src.python.multi.py39", "src/python/multi@interpreter_constraints=py39"),
    ]


@pytest.mark.parametrize(
    "global_args, args, written_to",
    [
        ([], ["--export-dists-output-dir=exports"], "exports"),
        (["--pants-distdir=build/out"], [], "build/out/export-dists"),
    ],
)
def test_an_earlier_export_inside_the_build_root_is_not_an_uncommitted_change(
    repo: Repo, global_args: list[str], args: list[str], written_to: str
) -> None:
    sha = repo.commit(MONOREPO)
    for attempt in ("first", "second"):
        repo.new_session()
        result = repo.rule_runner.run_goal_rule(
            ExportDists,
            global_args=[*ARGS, *global_args],
            args=[*args, "::"],
            env=ENV,
            env_inherit=ENV_INHERIT,
        )
        assert result.exit_code == 0, (attempt, result.stderr)
        assert result.stdout.strip() == os.path.join(repo.root, written_to, sha)
    assert "unchanged (already exported)" in result.stderr


def test_explain_in_a_work_tree_with_uncommitted_changes(repo: Repo) -> None:
    sha = repo.commit(MONOREPO)
    repo.write({"src/python/a/b/extra.py": "import c.y\n"})
    repo.new_session()
    result = run(repo, "--export-dists-explain=src/python/a/b", "::")
    assert result.exit_code == 0, result.stderr
    assert f"(commit {sha}, dirty)" in result.stdout
    assert "a/b/extra.py    <- src/python/a/b/extra.py" in result.stdout


def test_a_narrower_export_of_the_same_commit_keeps_the_earlier_dists(repo: Repo, tmp_path: Path) -> None:
    sha = repo.commit(MONOREPO)
    out = tmp_path / "exports"
    assert run(repo, f"--export-dists-output-dir={out}", "::").exit_code == 0
    before = (out / sha / "manifest.json").read_bytes()
    repo.new_session()
    narrower = run(repo, f"--export-dists-output-dir={out}", "src/python/c")
    assert narrower.exit_code == 0, narrower.stderr
    assert "unchanged (already exported) (with 2 more dists of an earlier export" in narrower.stderr
    assert (out / sha / "manifest.json").read_bytes() == before
    assert len(list((out / sha).glob("*.whl"))) == 3

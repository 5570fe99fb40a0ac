"""Kept plans (replan.py): an export that keeps the plans of the one before equals one that plans
every dist, commit after commit, and every kind of change that may move other plans plans all."""
from __future__ import annotations

import logging

import pytest

from export_dists import replan
from export_dists.conftest import Repo
from export_dists.export import Export
from export_dists.replan import _plan_args, modified_files, unsafe_file
from pants.engine.addresses import Address
from pants.engine.internals.build_files import BuildFileOptions

REPO = {
    "3rdparty/BUILD": "python_requirements(name='reqs')",
    "3rdparty/requirements.txt": "requests>=2\nattrs==23.1\n",
    "src/python/app/BUILD": "python_sources()\npython_tests(name='tests')",
    "src/python/app/main.py": "import lib.mid.m\n",
    "src/python/app/main_test.py": "import app.main\n",
    "libs/lib/BUILD": "python_sources()",
    "libs/lib/__init__.py": "",
    "libs/lib/mid/BUILD": "python_sources(dependencies=[':data'])\nresources(name='data', sources=['*.json'])",
    "libs/lib/mid/m.py": "import lib.low.l\nimport requests\n",
    "libs/lib/mid/data.json": '{"a": 1}\n',
    "libs/lib/low/BUILD": "python_sources()",
    "libs/lib/low/l.py": "",
    "libs/other/BUILD": "python_sources()",
    "libs/other/o.py": "import attr\n",
    "README.md": "the monorepo\n",
}
ROOTS = (Address("src/python/app"),)


def _log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.getMessage().startswith("export-dists plans:"))


def _export_both(repo: Repo, caplog: pytest.LogCaptureFixture, *roots: Address) -> tuple[Export, str]:
    """The export with kept plans (and what its log said about them), after checking it equals one
    that plans everything."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="export_dists.export"):
        kept = repo.export(*(roots or ROOTS))
    said = _log(caplog)
    full = repo.export(*(roots or ROOTS), reuse_plans=False)
    assert kept == full
    return kept, said


@pytest.fixture(autouse=True)
def no_kept_plans() -> None:
    replan.forget()


def _first_commit(repo: Repo, request: pytest.FixtureRequest, files: dict[str, str] = REPO) -> None:
    # A commit of its own per test: the engine (one per test module) answers an export of a commit
    # it exported before from memory, without running the plan rule.
    repo.commit(files, message=request.node.name)


def test_kept_plans_after_module_edits_equal_planning_everything(
    repo: Repo, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    _first_commit(repo, request)
    first, said = _export_both(repo, caplog)
    assert said == ""  # nothing to keep yet
    assert {d.name for d in first.dists} == {
        "monorepo.src.python.app", "monorepo.libs.lib.mid", "monorepo.libs.lib.mid.data", "monorepo.libs.lib.low"
    }

    # An import of a dist outside the closure brings it (and its third party) in.
    repo.commit({"libs/lib/low/l.py": "import other.o\n"})
    second, said = _export_both(repo, caplog)
    assert "edited 1 files of 1 targets" in said and "kept 3 of 4 from the export of" in said
    assert "monorepo.libs.other" in {d.name for d in second.dists}
    assert any(r.startswith("attrs") for d in second.dists if d.name == "monorepo.libs.other" for r in d.requires_dist)

    # Dropping it leaves it out again; a module's third-party import goes.
    repo.commit({"libs/lib/low/l.py": "", "libs/lib/mid/m.py": "import lib.low.l\n"})
    third, said = _export_both(repo, caplog)
    assert "edited 2 files of 2 targets" in said
    assert "monorepo.libs.other" not in {d.name for d in third.dists}
    assert not any(r.startswith("requests") for d in third.dists if d.name == "monorepo.libs.lib.mid" for r in d.requires_dist)

    # A resource's content: its wheel changes, nothing is planned but its dist.
    repo.commit({"libs/lib/mid/data.json": '{"a": 2}\n'})
    fourth, said = _export_both(repo, caplog)
    assert "edited 1 files of 1 targets" in said

    def fingerprint(export: Export, name: str) -> str | None:
        return next(d.fingerprint for d in export.dists if d.name == name)

    assert fingerprint(fourth, "monorepo.libs.lib.mid.data") != fingerprint(third, "monorepo.libs.lib.mid.data")
    assert fingerprint(fourth, "monorepo.libs.lib.low") == fingerprint(third, "monorepo.libs.lib.low")

    # A test edits no dist: every plan is kept.
    repo.commit({"src/python/app/main_test.py": "import app.main\nimport lib.low.l\n"})
    _, said = _export_both(repo, caplog)
    assert "kept 4 of 4" in said

    # Back to a commit exported before: its diff from the last is the reverse edit.
    repo.git("checkout", "-q", "HEAD~1")
    repo.new_session()
    again, said = _export_both(repo, caplog)
    assert "kept 4 of 4" in said and again.dists == fourth.dists


@pytest.mark.parametrize(
    "change, why",
    [
        ({"libs/lib/low/BUILD": "python_sources(export_dist_name='renamed-low')"}, "the BUILD file libs/lib/low/BUILD"),
        ({"libs/lib/__init__.py": "import requests\n"}, "libs/lib/__init__.py (modules below it"),
        ({"3rdparty/requirements.txt": "requests>=2.31\nattrs==23.1\n"}, "3rdparty/requirements.txt, a source of the `_generator_sources_helper` target"),
        ({"README.md": "more\n"}, "README.md, which no target owns"),
        ({"libs/lib/low/new.py": "import requests\n"}, "the commit adds libs/lib/low/new.py"),
    ],
)
def test_changes_that_may_move_other_plans_plan_everything(
    repo: Repo, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest, change: dict[str, str], why: str
) -> None:
    _first_commit(repo, request)
    _export_both(repo, caplog)
    repo.commit(change)
    _, said = _export_both(repo, caplog)
    assert f"planning all dists: {why}" in said or f"planning all dists: the commit edits {why}" in said, said


def test_a_removed_file_plans_everything(repo: Repo, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest) -> None:
    _first_commit(repo, request, {**REPO, "libs/lib/low/extra.py": ""})
    _export_both(repo, caplog)
    repo.git("rm", "-q", "libs/lib/low/extra.py")
    repo.commit()
    _, said = _export_both(repo, caplog)
    assert "planning all dists: the commit removes libs/lib/low/extra.py" in said


def test_other_options_or_a_dirty_tree_plan_everything(
    repo: Repo, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    _first_commit(repo, request)
    _export_both(repo, caplog)
    # Other options: nothing kept under them.
    repo.set_options("--python-infer-no-string-imports")
    repo.commit({"libs/lib/low/l.py": "x = 1\n"})
    _, said = _export_both(repo, caplog)
    assert said == (
        "export-dists plans: planning all dists: the command line differs from the export before "
        "(+--python-infer-no-string-imports)"
    )
    # An uncommitted edit: planned from scratch, and not kept for the next export.
    repo.write({"libs/lib/low/l.py": "import other.o\n"})
    repo.new_session()
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="export_dists.export"):
        dirty_export = repo.export(*ROOTS, allow_dirty=True)
    assert "planning all dists: the work tree has uncommitted changes" in _log(caplog)
    assert dirty_export == repo.export(*ROOTS, allow_dirty=True, reuse_plans=False)
    assert "monorepo.libs.other" in {d.name for d in dirty_export.dists}


def test_other_specs_plan_everything(repo: Repo, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest) -> None:
    _first_commit(repo, request)
    _export_both(repo, caplog)
    repo.commit({"libs/lib/low/l.py": "x = 1\n"})
    _, said = _export_both(repo, caplog, Address("libs/lib/mid"))
    assert "planning all dists: the specs name other targets" in said


def test_git_diff_output_is_read_as_modified_files_only() -> None:
    assert modified_files("M\0a/b.py\0M\0c d.py\0") == (("a/b.py", "c d.py"), None)
    assert modified_files("") == ((), None)
    assert modified_files("M\0a.py\0A\0b.py\0")[1] == "the commit adds b.py"
    assert modified_files("T\0link\0")[1] == "the commit changes the type of link"
    assert modified_files("M\0a.py")[1] is None
    assert modified_files("M\0")[1] == "git's diff could not be read"


def test_build_files_preludes_and_init_files_are_unsafe() -> None:
    options = BuildFileOptions(patterns=("BUILD", "BUILD.*"), ignores=(), prelude_globs=("build-support/macros/**/*.py",))
    assert unsafe_file(("a/BUILD.pants",), options) == "the commit edits the BUILD file a/BUILD.pants"
    assert unsafe_file(("build-support/macros/x/y.py",), options) == (
        "the commit edits the BUILD file prelude build-support/macros/x/y.py"
    )
    assert unsafe_file(("a/__init__.py",), options) is not None
    assert unsafe_file(("a/b.py", "a/BUILD_helpers.py"), options) is None


def test_a_file_two_dists_own_plans_both_again(repo: Repo, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest) -> None:
    files = {
        **REPO,
        "libs/lib/low/BUILD": "python_sources()\nresources(name='copy', sources=['l.py'])",
        "src/python/app/main.py": "import lib.mid.m\n",
    }
    _first_commit(repo, request, files)
    roots = (Address("src/python/app"), Address("libs/lib/low", target_name="copy"))
    _export_both(repo, caplog, *roots)
    repo.commit({"libs/lib/low/l.py": "import other.o\n"})
    export, said = _export_both(repo, caplog, *roots)
    assert "edited 1 files of 2 targets" in said and "kept 3 of 5" in said, said
    assert {"monorepo.libs.lib.low.copy", "monorepo.libs.other"} <= {d.name for d in export.dists}


def test_a_new_output_directory_each_export_keeps_plans(
    repo: Repo, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    # As the relay's pull builds run it: `--export-dists-output-dir=<a new staging directory>`.
    repo.set_options("--export-dists-output-dir=/tmp/staging-1")
    _first_commit(repo, request)
    _export_both(repo, caplog)
    repo.set_options("--export-dists-output-dir=/tmp/staging-2")
    repo.commit({"libs/lib/low/l.py": "x = 1\n"})
    _, said = _export_both(repo, caplog)
    assert "kept 3 of 4" in said, said


def test_the_command_line_compared_leaves_out_the_program_and_the_goals_own_flags() -> None:
    assert _plan_args(("/bin/pants", "--no-pantsd", "export-dists", "--output-dir=x", "--no-reuse-plans", "::")) == (
        "--no-pantsd", "export-dists", "::"
    )
    assert _plan_args(("pants", "--export-dists-output-dir=x", "export-dists", "src::")) == ("export-dists", "src::")
    assert _plan_args(("pants", "--python-infer-no-imports", "export-dists", "::")) == (
        "--python-infer-no-imports", "export-dists", "::"
    )

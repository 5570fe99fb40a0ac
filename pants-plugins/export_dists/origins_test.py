"""Versions by content: which commits give a dist a new version, and which must not."""
from __future__ import annotations

import io
import json
import os
import zipfile

import pytest

from export_dists.conftest import Repo
from export_dists.export import Export
from export_dists.content_versions import pants_glob_matcher
from export_dists_core.graphs import closures, condense
from export_dists_core.history import HistoryCommit, parse_history
from export_dists_core.inputs import DistInputs, InputIndex
from export_dists_core.origins import find_origins
from export_dists.subsystem import VersionScheme
from pants.engine.addresses import Address

BASE = {
    "3rdparty/BUILD": 'python_requirement(name="requests", requirements=["requests>=2"])',
    "src/python/app/BUILD": "python_sources()\npython_tests(name='tests')",
    "src/python/app/main.py": "import lib.util\nimport requests\n",
    "src/python/app/main_test.py": "import app.main\n",
    "src/python/lib/BUILD": "python_sources()",
    "src/python/lib/util.py": "X = 1\n",
    "src/python/other/BUILD": "python_sources()",
    "src/python/other/o.py": "",
    "docs/README.md": "hello\n",
}
ROOTS = (Address("src/python/app"), Address("src/python/lib"), Address("src/python/other"))
APP, LIB, OTHER = "monorepo.src.python.app", "monorepo.src.python.lib", "monorepo.src.python.other"


def versions(export: Export) -> dict[str, str]:
    return {d.name: d.version for d in export.dists}


def export_all(repo: Repo, **kwargs) -> Export:
    return repo.export(*ROOTS, **kwargs)


def changed_by(repo: Repo, files: dict[str, str] | None = None, *, remove: tuple[str, ...] = ()) -> set[str]:
    """Commit BASE, export, commit the change, export again: the dists whose version changed."""
    repo.commit(BASE)
    before = versions(export_all(repo))
    for path in remove:
        os.remove(os.path.join(repo.root, path))
    sha = repo.commit(files or {})
    after = versions(export_all(repo))
    changed = {name for name in after if before.get(name) != after[name]}
    for name in changed:
        assert after[name] == f"0.2+g{sha[:12]}"
    return changed


# What must give a new version.


def test_a_file_added_to_a_dist(repo: Repo) -> None:
    assert changed_by(repo, {"src/python/lib/more.py": ""}) == {LIB, APP}


def test_a_file_deleted_from_a_dist(repo: Repo) -> None:
    repo.commit(BASE)
    repo.commit({"src/python/lib/extra.py": ""})
    before = versions(export_all(repo))
    os.remove(os.path.join(repo.root, "src/python/lib/extra.py"))
    sha = repo.commit()
    after = versions(export_all(repo))
    assert after[LIB] == after[APP] == f"0.3+g{sha[:12]}" != before[LIB]
    assert after[OTHER] == before[OTHER]


def test_a_file_moved_between_targets(repo: Repo) -> None:
    repo.commit(BASE)
    before = versions(export_all(repo))
    os.rename(os.path.join(repo.root, "src/python/other/o.py"), os.path.join(repo.root, "src/python/lib/o.py"))
    repo.commit()
    after = versions(export_all(repo))
    assert {n for n in after if after[n] != before[n]} == {LIB, APP, OTHER}


def test_a_build_edit_that_adds_a_dependency_without_touching_sources(repo: Repo) -> None:
    changed = changed_by(repo, {"src/python/lib/BUILD": "python_sources(dependencies=['src/python/other'])"})
    assert changed == {LIB, APP}


def test_a_build_edit_that_removes_a_dependency_with_an_exclusion(repo: Repo) -> None:
    changed = changed_by(
        repo, {"src/python/app/BUILD": "python_sources(dependencies=['!src/python/lib'])\npython_tests(name='tests')"}
    )
    assert changed == {APP}


def test_an_added_exclusion_in_a_sources_glob(repo: Repo) -> None:
    repo.commit({**BASE, "src/python/lib/gen.py": ""})
    before = versions(export_all(repo))
    repo.commit({"src/python/lib/BUILD": "python_sources(sources=['*.py', '!gen.py'])"})
    export = export_all(repo)
    assert {n for n, v in versions(export).items() if v != before[n]} == {LIB, APP}
    lib = next(p for p in export.planned if p.plan.identity.name == LIB)
    assert [f.path for f in lib.plan.files] == ["src/python/lib/util.py"]


def test_a_third_party_requirement_line_changed(repo: Repo) -> None:
    changed = changed_by(repo, {"3rdparty/BUILD": 'python_requirement(name="requests", requirements=["requests>=2.31"])'})
    assert APP in changed


def test_pants_configuration_changed(repo: Repo) -> None:
    # The namespace, source roots, interpreter constraints ... live in pants.toml.
    repo.write({"pants.toml": "[GLOBAL]\n"})
    assert changed_by(repo, {"pants.toml": '[export-dists]\nnamespace = "acme"\n'}) == {APP, LIB, OTHER}


def test_a_dependency_changed_changes_its_dependents_only(repo: Repo) -> None:
    assert changed_by(repo, {"src/python/lib/util.py": "X = 2\n"}) == {LIB, APP}


def test_a_deleted_module_that_a_dist_imported(repo: Repo) -> None:
    # lib disappears: app's Requires-Dist loses it, though no path of app's closure at HEAD changed.
    repo.commit(BASE)
    before = versions(export_all(repo))
    for path in ("src/python/lib/util.py", "src/python/lib/BUILD"):
        os.remove(os.path.join(repo.root, path))
    repo.commit()
    after = versions(repo.export(Address("src/python/app"), Address("src/python/other")))
    assert after[APP] != before[APP] and after[OTHER] == before[OTHER]


def test_a_renamed_directory_is_a_new_dist_with_a_new_version(repo: Repo) -> None:
    repo.commit(BASE)
    repo.commit({"src/python/unrelated/BUILD": "python_sources()", "src/python/unrelated/u.py": ""})
    os.rename(os.path.join(repo.root, "src/python/other"), os.path.join(repo.root, "src/python/renamed"))
    sha = repo.commit()
    after = versions(repo.export(Address("src/python/renamed"), Address("src/python/unrelated")))
    assert after["monorepo.src.python.renamed"] == f"0.3+g{sha[:12]}"
    assert after["monorepo.src.python.unrelated"].startswith("0.2+g")


def test_a_merge_commit_on_main_counts_along_the_first_parent(repo: Repo) -> None:
    repo.commit(BASE)
    before = versions(export_all(repo))
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit({"src/python/lib/util.py": "X = 'feature'\n"})
    repo.commit({"src/python/lib/util.py": "X = 'feature 2'\n"})
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "merge", "feature")
    merge = repo.git("rev-parse", "HEAD")
    repo.commit({"docs/README.md": "after the merge\n"})
    after = versions(export_all(repo))
    assert after[LIB] == after[APP] == f"0.2+g{merge[:12]}"
    assert after[OTHER] == before[OTHER]


# What must not.


def test_a_change_in_a_sibling_directory(repo: Repo) -> None:
    assert changed_by(repo, {"src/python/other/o.py": "changed = True\n"}) == {OTHER}


def test_a_readme_elsewhere(repo: Repo) -> None:
    assert changed_by(repo, {"docs/README.md": "changed\n"}) == set()


def test_a_test_file_the_dist_does_not_ship(repo: Repo) -> None:
    assert changed_by(repo, {"src/python/app/main_test.py": "import app.main\nassert True\n"}) == set()


def test_a_new_file_in_a_sibling_directory_that_nobody_imports(repo: Repo) -> None:
    assert changed_by(repo, {"src/python/other/new.py": ""}) == {OTHER}


# The promises around it.


def wheels(export: Export) -> dict[str, bytes]:
    return {d.wheel.filename: d.wheel.content for d in export.dists}


def test_exporting_the_origin_commit_reproduces_the_wheel_byte_for_byte(repo: Repo) -> None:
    repo.commit(BASE)
    origin = repo.commit({"src/python/lib/util.py": "X = 2\n"})
    repo.commit({"src/python/other/o.py": "Y = 1\n"})
    repo.commit({"docs/README.md": "more\n"})
    at_head = export_all(repo)
    lib = next(d for d in at_head.dists if d.name == LIB)
    assert lib.origin == origin and lib.version == f"0.2+g{origin[:12]}"
    repo.git("checkout", "-q", origin)
    repo.new_session()
    at_origin = export_all(repo)
    assert at_origin.info.sha == origin
    for name in (LIB, APP):
        (then,) = [d for d in at_origin.dists if d.name == name]
        (now,) = [d for d in at_head.dists if d.name == name]
        assert (then.wheel.filename, then.wheel.content, then.fingerprint) == (
            now.wheel.filename,
            now.wheel.content,
            now.fingerprint,
        )
    with zipfile.ZipFile(io.BytesIO(lib.wheel.content)) as archive:
        provenance = json.loads(archive.read(f"monorepo_src_python_lib-{lib.version}.dist-info/export_dists.json"))
    assert provenance["sha"] == origin and provenance["fingerprint"] == lib.fingerprint
    assert provenance["address"] == "src/python/lib:lib"


def test_pins_name_each_dependency_at_its_own_version(repo: Repo) -> None:
    repo.commit(BASE)
    sha = repo.commit({"src/python/app/main.py": "import lib.util\nimport requests\nX = 1\n"})
    export = export_all(repo)
    app = next(d for d in export.dists if d.name == APP)
    lib = next(d for d in export.dists if d.name == LIB)
    assert app.version == f"0.2+g{sha[:12]}" and lib.version.startswith("0.1+g")
    assert f"{LIB}=={lib.version}" in app.requires_dist


def test_fingerprints_change_with_content_and_with_the_closure(repo: Repo) -> None:
    repo.commit(BASE)
    before = {d.name: d.fingerprint for d in export_all(repo).dists}
    repo.commit({"src/python/lib/util.py": "X = 2\n"})
    after = {d.name: d.fingerprint for d in export_all(repo).dists}
    assert before[OTHER] == after[OTHER]
    assert before[LIB] != after[LIB] and before[APP] != after[APP]


def test_only_dists_with_uncommitted_inputs_are_dirty(repo: Repo) -> None:
    sha = repo.commit(BASE)
    repo.write({"src/python/lib/util.py": "X = 'uncommitted'\n", "docs/notes.txt": "untracked\n"})
    repo.new_session()
    export = export_all(repo, allow_dirty=True)
    assert export.info.dirty and export.info.directory_name == f"{sha}.dirty"
    found = versions(export)
    assert found[LIB] == found[APP] == f"0.1+g{sha[:12]}.dirty"
    assert found[OTHER] == f"0.1+g{sha[:12]}"
    assert {d.name for d in export.dists if d.dirty} == {LIB, APP}


def test_the_commit_scheme_gives_every_dist_the_exported_commit(repo: Repo) -> None:
    repo.commit(BASE)
    sha = repo.commit({"src/python/other/o.py": "changed = True\n"})
    export = export_all(repo, version_scheme=VersionScheme.COMMIT)
    assert set(versions(export).values()) == {f"0.2+g{sha[:12]}"}
    assert export.info.format == 1
    lib = next(d for d in export.dists if d.name == LIB)
    with zipfile.ZipFile(io.BytesIO(lib.wheel.content)) as archive:
        provenance = json.loads(archive.read(f"monorepo_src_python_lib-{lib.version}.dist-info/export_dists.json"))
    assert "fingerprint" not in provenance and provenance["sha"] == sha


# The pure parts.


def test_parse_history() -> None:
    raw = (
        b"\x1eaaaa\x1fbbbb cccc\x1f1700000100\x1f2023-11-14T22:15:00+00:00\x00\nsrc/a.py\x00src/b c.py\x00"
        b"\x1ebbbb\x1f\x1f1700000000\x1f2023-11-14T22:13:20+00:00\x00"
    )
    assert parse_history(raw) == (
        HistoryCommit("aaaa", 1700000100, "2023-11-14T22:15:00+00:00", ("src/a.py", "src/b c.py"), "bbbb"),
        HistoryCommit("bbbb", 1700000000, "2023-11-14T22:13:20+00:00", (), ""),
    )


def test_closures_with_a_cycle() -> None:
    found = closures({"a": ["b"], "b": ["c"], "c": ["b", "e"], "d": [], "e": []})
    assert found == {
        "a": frozenset("abce"),
        "b": frozenset("bce"),
        "c": frozenset("bce"),
        "d": frozenset("d"),
        "e": frozenset("e"),
    }
    graph = condense({"a": ["b"], "b": ["c"], "c": ["b", "e"], "d": [], "e": []})
    assert graph.component["b"] == graph.component["c"] != graph.component["a"]


def test_a_long_chain_does_not_recurse() -> None:
    n = 2000
    found = closures({str(i): [str(i + 1)] if i + 1 < n else [] for i in range(n)})
    assert len(found["0"]) == n and found[str(n - 1)] == {str(n - 1)}


@pytest.fixture
def index() -> InputIndex:
    return InputIndex(
        {
            "a": DistInputs(
                files=("src/a/m.py",),
                includes=("src/a/*.py",),
                excludes=("src/a/*_test.py",),
                directories=("src/a",),
                imports=("b.n", "os"),
            ),
            "b": DistInputs(("src/b/n.py",), ("src/b/*.py",), (), ("src/b",), ()),
        },
        build_patterns=("BUILD", "BUILD.*"),
        glob_matcher=pants_glob_matcher,
        repository_wide_directories=("3rdparty",),
        excluded=("3rdparty/default.lock",),
    )


@pytest.mark.parametrize(
    "path, dists",
    [
        ("src/a/m.py", {"a"}),
        ("src/a/new.py", {"a"}),  # matches the glob
        ("src/a/m_test.py", set()),  # excluded by the glob
        ("src/a/BUILD", {"a"}),
        ("src/BUILD.pants", {"a", "b"}),  # __defaults__ above both
        ("BUILD", {"a", "b"}),
        ("src/a/README.md", set()),
        ("src/__init__.py", {"a", "b"}),  # Pants infers dependencies on ancestor __init__.py
        ("src/b/n.py", {"a", "b"}),  # a imports b.n: any path that could provide it
        ("old/b/n.py", {"a"}),  # e.g. deleted: a's import was owned there
        ("src/c/x.py", set()),
    ],
)
def test_which_dists_a_path_is_an_input_of(index: InputIndex, path: str, dists: set[str]) -> None:
    assert index.dists_of(path) == dists


def test_repository_wide_inputs(index: InputIndex) -> None:
    assert index.is_repository_wide("pants.toml") and index.is_repository_wide("pants.ci.toml")
    assert index.is_repository_wide("3rdparty/BUILD") and index.is_repository_wide("3rdparty/requirements.txt")
    assert not index.is_repository_wide("3rdparty/default.lock")
    assert not index.is_repository_wide("src/pants.toml")


def test_find_origins_walks_until_every_dist_is_found(index: InputIndex) -> None:
    history = [
        HistoryCommit("c4", 4, "", ("docs/x.md",)),
        HistoryCommit("c3", 3, "", ("src/b/n.py",)),
        HistoryCommit("c2", 2, "", ("src/a/m.py",)),
        HistoryCommit("c1", 1, "", ("pants.toml", "src/a/m.py", "src/b/n.py")),
    ]
    closure = condense({"a": ["b"], "b": []})
    found = find_origins(history, index, closure)
    assert found.index == {"a": 1, "b": 1}
    found = find_origins(history[2:], index, closure, changed=["src/b/n.py"])
    assert found.index == {"a": 0, "b": 1} and found.dirty == {"a", "b"}
    found = find_origins(history, index, closure, changed=["src/a/m.py"])
    assert found.dirty == {"a"}


def test_a_history_remembered_from_another_line_is_not_reused(repo: Repo) -> None:
    base = repo.commit(BASE)
    repo.commit({"src/python/lib/util.py": "X = 2\n"})
    export_all(repo)  # this process now remembers that commit's history
    repo.git("reset", "-q", "--hard", "HEAD~1")
    sha = repo.commit({"src/python/other/o.py": "Y = 1\n"})  # a sibling of the remembered commit
    after = versions(export_all(repo))
    assert after[OTHER] == f"0.2+g{sha[:12]}"
    assert after[LIB] == after[APP] == f"0.1+g{base[:12]}"


class _Unread:
    """A commit below the walk to go on from: its changed paths must not be read again."""

    def __init__(self, commit: HistoryCommit) -> None:
        self.sha = commit.sha

    @property
    def paths(self) -> tuple[str, ...]:
        raise AssertionError(f"{self.sha} was read again")


PATHS = ("src/a/m.py", "src/a/new.py", "src/b/n.py", "src/BUILD", "docs/x.md", "3rdparty/BUILD", "old/b/n.py")


@pytest.mark.parametrize("seed", range(20))
def test_a_walk_goes_on_from_the_walk_of_an_earlier_commit(index: InputIndex, seed: int) -> None:
    import random

    rng = random.Random(seed)
    history = [
        HistoryCommit(f"c{n}", n, "", tuple(rng.sample(PATHS, rng.randint(0, 2))))
        for n in range(rng.randint(1, 30), 0, -1)
    ]
    closure = condense({"a": ["b"], "b": []})
    full = find_origins(history, index, closure)
    for above in range(len(history)):
        earlier = find_origins(history[above:], index, closure)
        assert earlier.walk is not None
        later = [*history[:above], *(_Unread(c) for c in history[above:])]
        found = find_origins(later, index, closure, since=earlier.walk)  # type: ignore[arg-type]
        assert found.index == full.index
        assert found.walk is not None and (found.walk.own, found.walk.wide) == (full.walk.own, full.walk.wide)  # type: ignore[union-attr]
        dirty = find_origins(later, index, closure, changed=["src/b/n.py"], since=earlier.walk)  # type: ignore[arg-type]
        assert dirty.dirty == {"a", "b"}


def test_a_walk_of_another_line_or_index_is_not_gone_on_from(index: InputIndex) -> None:
    history = [
        HistoryCommit("c3", 3, "", ("docs/x.md",)),
        HistoryCommit("c2", 2, "", ("src/a/m.py",)),
        HistoryCommit("c1", 1, "", ("src/b/n.py",)),
    ]
    closure = condense({"a": ["b"], "b": []})
    full = find_origins(history, index, closure)
    sibling = find_origins([HistoryCommit("x2", 2, "", ()), history[2]], index, closure)
    assert find_origins(history, index, closure, since=sibling.walk).index == full.index == {"a": 1, "b": 2}
    # The same commit walked with an index of other settings: a full walk.
    other = InputIndex(
        {"a": DistInputs(("src/a/m.py",), (), (), (), ()), "b": DistInputs(("src/b/n.py",), (), (), (), ())},
        build_patterns=("BUILD",),
        glob_matcher=pants_glob_matcher,
    )
    earlier = find_origins(history[1:], other, closure)
    assert find_origins(history, index, closure, since=earlier.walk).index == full.index


def _index_with(a: DistInputs, **more: DistInputs) -> InputIndex:
    return InputIndex(
        {"a": a, "b": DistInputs(("src/b/n.py",), ("src/b/*.py",), (), ("src/b",), ()), **more},
        build_patterns=("BUILD", "BUILD.*"),
        glob_matcher=pants_glob_matcher,
        repository_wide_directories=("3rdparty",),
        excluded=("3rdparty/default.lock",),
    )


@pytest.mark.parametrize("seed", range(20))
def test_a_walk_goes_on_for_the_dists_whose_inputs_are_the_same(seed: int) -> None:
    import random

    rng = random.Random(seed)
    paths = (*PATHS, "src/c/k.py", "src/a/extra.py")
    history = [
        HistoryCommit(f"c{n}", n, "", tuple(rng.sample(paths, rng.randint(0, 2))))
        for n in range(rng.randint(1, 30), 0, -1)
    ]
    a = DistInputs(("src/a/m.py",), ("src/a/*.py",), ("src/a/*_test.py",), ("src/a",), ("b.n", "os"))
    before = _index_with(a)
    # At the later commit a imports c.k too, and a new dist c appeared: both read the whole history.
    after = _index_with(
        DistInputs(a.files, a.includes, a.excludes, a.directories, ("b.n", "c.k", "os")),
        c=DistInputs(("src/c/k.py",), ("src/c/*.py",), (), ("src/c",), ()),
    )
    closure = condense({"a": ["b", "c"], "b": [], "c": []})
    full = find_origins(history, after, closure)
    for above in range(len(history)):
        earlier = find_origins(history[above:], before, condense({"a": ["b"], "b": []}))
        found = find_origins(history, after, closure, since=earlier.walk)
        assert found.index == full.index
        assert (found.walk.own, found.walk.wide) == (full.walk.own, full.walk.wide)  # type: ignore[union-attr]


def test_one_leaf_commit_after_another_goes_on_from_the_walk_before(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from export_dists import content_versions

    repo.commit(BASE)
    export_all(repo)
    lib = repo.commit({"src/python/lib/util.py": "X = 2\n"})
    export_all(repo)
    other = repo.commit({"src/python/other/o.py": "Y = 3\n"})
    built: list[object] = []
    monkeypatch.setattr(content_versions, "InputIndex", lambda *a, **k: built.append(a) or InputIndex(*a, **k))
    found = versions(export_all(repo))  # from the walk of the commit before: no new index
    assert built == []
    assert found[OTHER] == f"0.3+g{other[:12]}"
    assert found[LIB] == found[APP] == f"0.2+g{lib[:12]}"


ASKED = (*PATHS, "src/c/k.py", "src/a/extra.py", "src/a/m_test.py", "src/__init__.py", "src/c/BUILD", "BUILD", "c/k.py")


@pytest.mark.parametrize("seed", range(10))
def test_an_index_for_changed_inputs_answers_as_a_new_index_and_leaves_the_old_one(seed: int) -> None:
    import random

    rng = random.Random(seed)

    def some_inputs() -> dict[str, DistInputs]:
        found = {}
        for key, directory in (("a", "src/a"), ("b", "src/b"), ("c", "src/c"), ("d", "src/a/sub")):
            if rng.random() < 0.2:
                continue  # this dist is not there
            files = tuple(sorted(rng.sample([f"{directory}/m.py", f"{directory}/n.py", f"{directory}/__init__.py"], rng.randint(0, 2))))
            includes = (f"{directory}/*.py",) if rng.random() < 0.7 else ()
            imports = tuple(sorted(rng.sample(["b.n", "c.k", "os", "a.m.x"], rng.randint(0, 2))))
            found[key] = DistInputs(files, includes, (f"{directory}/*_test.py",), (directory,), imports)
        return found

    def new(inputs: dict[str, DistInputs]) -> InputIndex:
        return InputIndex(inputs, build_patterns=("BUILD",), glob_matcher=pants_glob_matcher, repository_wide_directories=("3rdparty",))

    before_inputs, after_inputs = some_inputs(), some_inputs()
    before = new(before_inputs)
    answers = {path: before.dists_of(path) for path in ASKED}
    after = before.with_inputs(after_inputs)
    fresh = new(after_inputs)
    assert after.keys == fresh.keys
    assert {path: after.dists_of(path) for path in ASKED} == {path: fresh.dists_of(path) for path in ASKED}
    before._answers.clear()  # asked again from its tables, which must be as they were
    assert {path: before.dists_of(path) for path in ASKED} == answers

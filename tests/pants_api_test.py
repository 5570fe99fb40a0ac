"""The plugin against the committed API snapshot of every supported Pants release (no network).

build-support/pants_api/: uses.py reads what the plugin uses of Pants, snapshot.py recorded what
each name is at each release (from a pantsbuild/pants clone), check.py compares.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "build-support" / "pants_api"))

from check import PLUGIN, check, load_snapshots, version_of  # noqa: E402
from snapshot import read_tags  # noqa: E402
from uses import collect_uses  # noqa: E402

SNAPSHOTS = load_snapshots()


def test_every_supported_release_has_a_snapshot() -> None:
    assert [s["tag"] for s in SNAPSHOTS] == [label for label, _ in read_tags()]
    assert version_of(SNAPSHOTS[0]) == (2, 17) and version_of(SNAPSHOTS[-1]) >= (2, 33)
    for snapshot in SNAPSHOTS:
        assert len(snapshot["commit"]) == 40 and snapshot["packaging"], snapshot["tag"]


def test_the_plugin_uses_only_what_each_release_has() -> None:
    uses = collect_uses(PLUGIN)
    assert len(uses) > 100  # the whole plugin was read, not an empty directory
    problems = check(uses, SNAPSHOTS)
    assert not problems, "\n".join(map(str, problems))


def _plugin(tmp_path: Path, source: str) -> Path:
    plugin = tmp_path / "export_dists"
    plugin.mkdir(parents=True)
    (plugin / "module.py").write_text(source)
    return plugin


def _problems(tmp_path: Path, source: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in check(collect_uses(_plugin(tmp_path, source)), SNAPSHOTS):
        found.setdefault(problem.tag, []).append(problem.message)
    return found


def test_a_name_missing_at_some_releases_fails_there(tmp_path: Path) -> None:
    found = _problems(tmp_path, "from pants.engine.rules import Get\n")
    assert set(found) == {"release_2.32.1", "release_2.33.0", "main"}
    assert all("missing" in m and "PANTS_2_NN" in m for ms in found.values() for m in ms)


def test_a_gated_name_is_checked_only_where_its_gate_admits_it(tmp_path: Path) -> None:
    source = (
        "from export_dists.engine import PANTS_2_32\n"
        "if not PANTS_2_32:\n    from pants.engine.rules import Get\n"
        "else:\n    from pants.engine.rules import concurrently\n"
    )
    assert _problems(tmp_path, source) == {}
    # The same names on the wrong sides of the gate fail on both sides.
    swapped = source.replace("if not PANTS_2_32", "if PANTS_2_32")
    found = _problems(tmp_path / "swapped", swapped)
    assert "release_2.17.1" in found and "release_2.33.0" in found


def test_a_name_no_snapshot_recorded_says_how_to_regenerate(tmp_path: Path) -> None:
    found = _problems(tmp_path, "from pants.engine.rules import NoSuchName\n")
    assert len(found) == len(SNAPSHOTS)
    assert all("snapshot.py --pants-git" in m for ms in found.values() for m in ms)


def test_calls_are_checked_against_each_signature(tmp_path: Path) -> None:
    bad_keyword = (
        "from pants.engine.target import WrappedTargetRequest\n"
        "def f(a):\n    return WrappedTargetRequest(a, description_of_origins='x')\n"
    )
    found = _problems(tmp_path / "kw", bad_keyword)
    assert len(found) == len(SNAPSHOTS) and "no parameter description_of_origins" in found["main"][0]
    by_name_to_a_class = (
        "from pants.engine.target import WrappedTargetRequest\n"
        "def f(a):\n    return WrappedTargetRequest(a, **implicitly())\n"
    )
    found = _problems(tmp_path / "byname", by_name_to_a_class)
    assert "not a rule" in found["main"][0]
    too_many = (
        "from export_dists.engine import PANTS_2_32\n"
        "from pants.backend.python.dependency_inference.parse_python_dependencies import ParsePythonDependenciesRequest\n"
        "def f(a, b):\n    return ParsePythonDependenciesRequest(a, b)\n"
    )
    found = _problems(tmp_path / "arity", too_many)
    assert set(found) == {"release_2.32.1", "release_2.33.0", "main"}
    assert "takes at most 1" in found["main"][0]


def _branch_names(body: list[ast.stmt]) -> set[str]:
    names = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.If):
            names |= _branch_names(node.body) & _branch_names(node.orelse)
    return names


def test_the_adapter_defines_the_same_operations_on_both_sides_of_its_gate() -> None:
    tree = ast.parse((PLUGIN / "engine.py").read_text())
    gate = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "PANTS_2_23")
    exported = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__all__")  # type: ignore[attr-defined]
    public = {e.value for e in exported.value.elts} - {"PANTS_2_23", "PANTS_2_32", "ParsedImports"}  # type: ignore[attr-defined]
    assert public <= _branch_names(gate.body), public - _branch_names(gate.body)
    assert public <= _branch_names(gate.orelse), public - _branch_names(gate.orelse)
    # The new side has no Get: it must load on Pants 2.32+, where Get is gone.
    assert "Get" not in ast.dump(ast.Module(body=gate.body, type_ignores=[]))

"""Dependency cycles between dists: found by Tarjan's algorithm, reported at export and by --explain."""
from __future__ import annotations

import logging

import pytest

from export_dists.conftest import ARGS, ENV, ENV_INHERIT, Repo
from export_dists.cycles import LARGE_CYCLE
from export_dists.goal import ExportDists
from export_dists_core.graphs import condense
from pants.engine.addresses import Address


def _a(name: str) -> Address:
    return Address("src", target_name=name)


def test_strongly_connected_components() -> None:
    graph = {
        _a("a"): [_a("b")],
        _a("b"): [_a("c"), _a("x")],
        _a("c"): [_a("a")],
        _a("x"): [_a("y")],
        _a("y"): [_a("x"), _a("outside")],  # an edge to a node not in the graph is ignored
        _a("z"): [_a("z")],  # a self edge is not a cycle between dists
        _a("leaf"): [],
    }
    assert condense(graph).cycles() == [(_a("a"), _a("b"), _a("c")), (_a("x"), _a("y"))]


def test_a_long_chain_does_not_recurse() -> None:
    n = 5000  # far beyond Python's recursion limit
    graph = {_a(f"n{i}"): [_a(f"n{i + 1}")] for i in range(n)}
    graph[_a(f"n{n}")] = [_a("n0")]
    assert len(condense(graph).cycles()[0]) == n + 1


def _cycle_repo(size: int) -> dict[str, str]:
    files = {}
    for i in range(size):
        files[f"src/python/cyc/c{i:02d}/BUILD"] = "python_sources()"
        files[f"src/python/cyc/c{i:02d}/m.py"] = f"import cyc.c{(i + 1) % size:02d}.m\n"
    files["src/python/free/BUILD"] = "python_sources()"
    files["src/python/free/m.py"] = "import cyc.c00.m\n"
    return files


def test_export_reports_each_cycle_with_its_size_and_members(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(_cycle_repo(LARGE_CYCLE))
    with caplog.at_level(logging.WARNING):
        export = repo.export(Address("src/python/free"))
    assert len(export.dists) == LARGE_CYCLE + 1
    warnings = [" ".join(r.getMessage().split()) for r in caplog.records if "dependency cycle" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("1 dependency cycle between dists (installing any member installs all of them): ")
    assert f"- {LARGE_CYCLE} dists (monorepo.src.python.cyc.c00, " in warnings[0]
    assert "monorepo.src.python.free" not in warnings[0]
    assert "src/python/cyc/c00/m.py -> src/python/cyc/c01/m.py" in warnings[0]
    assert "pip 23.0 to 25.1" in warnings[0] and "pip >= 25.2 or uv" in warnings[0]


def test_a_small_cycle_is_reported_without_the_pip_note(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(_cycle_repo(2))
    with caplog.at_level(logging.WARNING):
        repo.export(Address("src/python/cyc/c00"))
    warnings = [r.getMessage() for r in caplog.records if "dependency cycle" in r.getMessage()]
    assert len(warnings) == 1 and "- 2 dists (monorepo.src.python.cyc.c00, monorepo.src.python.cyc.c01)" in warnings[0]
    assert "pip 23.0" not in warnings[0]


def test_explain_names_the_cycle(repo: Repo) -> None:
    repo.commit(_cycle_repo(3))
    result = repo.rule_runner.run_goal_rule(
        ExportDists, global_args=ARGS, args=["--export-dists-explain=src/python/cyc/c01", "::"],
        env=ENV, env_inherit=ENV_INHERIT,
    )
    assert result.exit_code == 0, result.stderr
    assert "in a dependency cycle of 3 dists (installing one installs all): src/python/cyc/c00:c00, src/python/cyc/c02:c02" in result.stdout

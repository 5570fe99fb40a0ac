"""The one strongly-connected-components implementation and what is built on it."""
from __future__ import annotations

from export_dists_core.graphs import closures, condense

GRAPH = {"a": ["b"], "b": ["c"], "c": ["b", "e"], "d": ["a", "zz-not-a-key"], "e": [], "x": ["y"], "y": ["x"]}


def test_components_are_dependencies_first() -> None:
    graph = condense(GRAPH)
    position = {members: i for i, members in enumerate(graph.members)}
    assert ("b", "c") in position and ("x", "y") in position
    for index, successors in enumerate(graph.successors):
        assert all(s < index for s in successors)


def test_cycles_are_the_components_of_two_or_more_sorted() -> None:
    assert condense(GRAPH).cycles() == [("b", "c"), ("x", "y")]


def test_reachable_leaves_the_root_out_unless_nothing_else() -> None:
    graph = condense(GRAPH)
    assert graph.reachable("d") == ("a", "b", "c", "e")
    assert graph.reachable("b") == ("c", "e")  # its cycle partner, not itself
    assert graph.reachable("e") == ()


def test_fold_and_closures() -> None:
    assert closures(GRAPH)["a"] == frozenset("abce")
    assert condense(GRAPH).fold({k: 1 for k in GRAPH}, sum)["d"] == 5


def test_a_long_chain_does_not_recurse() -> None:
    n = 20_000
    graph = condense({i: [i + 1] if i + 1 < n else [0] for i in range(n)})
    assert graph.cycles() == [tuple(range(n))]

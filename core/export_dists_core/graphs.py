"""Dependency graphs of dists: strongly connected components (the one Tarjan), closures, folds.

Plain Python over any sortable, hashable keys (addresses, dist names): cycles.py reports the
components, origins.py and content fingerprints fold values over closures, environments.py takes a
root's closure. No Pants import here.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, Iterable, Mapping, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Condensed(Generic[K]):
    """A dependency graph's strongly connected components, dependencies first (cycles allowed)."""

    component: Mapping[K, int]  # key -> its component's index in `members`
    members: tuple[tuple[K, ...], ...]  # every dependency of a component comes before it
    successors: tuple[frozenset[int], ...]  # the components each one depends on (not itself)

    def fold(self, own: Mapping[K, T], combine: Callable[[Iterable[T]], T]) -> dict[K, T]:
        """Per key, `combine` over the `own` values of its whole closure, in O(nodes + edges)."""
        values: list[T] = []
        for index, members in enumerate(self.members):
            values.append(combine([*(own[m] for m in members), *(values[s] for s in self.successors[index])]))
        return {key: values[index] for key, index in self.component.items()}

    def cycles(self) -> list[tuple[K, ...]]:
        """The components of two or more keys (each sorted), sorted."""
        return sorted((members for members in self.members if len(members) > 1), key=_sort_key)

    def reachable(self, root: K) -> tuple[K, ...]:
        """Every key `root` reaches through its edges, `root` itself left out, sorted."""
        start = self.component[root]
        seen = {start}
        frontier = [start]
        while frontier:
            index = frontier.pop()
            for successor in self.successors[index]:
                if successor not in seen:
                    seen.add(successor)
                    frontier.append(successor)
        found = [key for index in seen for key in self.members[index]]
        return tuple(sorted((key for key in found if key != root), key=_sort_key))


def _sort_key(value: Any) -> Any:
    # Keys are sortable (Address, str); Hashable alone does not say so to a type checker.
    return value


def condense(dependencies: Mapping[K, Iterable[K]]) -> Condensed[K]:
    """Tarjan's algorithm, iteratively (a chain of thousands of dists would overflow recursion).

    Edges to keys that are not in `dependencies` are ignored. Keys must be sortable: each component's
    members are sorted.
    """
    graph = {key: [d for d in deps if d in dependencies] for key, deps in dependencies.items()}
    order: dict[K, int] = {}
    low: dict[K, int] = {}
    on_stack: set[K] = set()
    stack: list[K] = []
    components: list[tuple[K, ...]] = []
    component: dict[K, int] = {}
    for root in graph:
        if root in order:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                order[node] = low[node] = len(order)
                stack.append(node)
                on_stack.add(node)
            edges = graph[node]
            if child < len(edges):
                work.append((node, child + 1))
                dep = edges[child]
                if dep not in order:
                    work.append((dep, 0))
                elif dep in on_stack:
                    low[node] = min(low[node], order[dep])
                continue
            if low[node] == order[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = len(components)
                    members.append(member)
                    if member == node:
                        break
                components.append(tuple(sorted(members, key=_sort_key)))
            if work:  # back to the parent: it inherits the child's low link
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    successors = tuple(
        frozenset(component[d] for m in members for d in graph[m]) - {index}
        for index, members in enumerate(components)
    )
    return Condensed(component, tuple(components), successors)


def closures(dependencies: Mapping[K, Iterable[K]]) -> dict[K, frozenset[K]]:
    """Each key's transitive dependencies, itself included (for tests and small graphs)."""
    return condense(dependencies).fold(
        {k: frozenset([k]) for k in dependencies}, lambda xs: frozenset[K]().union(*xs)
    )


def closure_fingerprints(own: Mapping[K, str], graph: Condensed[K]) -> dict[K, str]:
    """Each key's fingerprint: its `own` digest and a Merkle hash over its closure (a cycle's members
    hashed together), in O(nodes + edges). Equal fingerprints mean equal content, closure included."""
    closure = graph.fold(own, lambda values: hashlib.sha256("\n".join(sorted(values)).encode()).hexdigest())
    return {key: hashlib.sha256(f"{own[key]}\n{closure[key]}".encode()).hexdigest() for key in own}

"""Dependency cycles between the dists of an export: found (strongly connected components), reported."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from pants.engine.addresses import Address

from export_dists.dists import DependencyEdge, DistPlan
from export_dists.findings import Cause, Finding
from export_dists.per_plan import PerPlan
from export_dists_core.graphs import Condensed, condense

# Above this size a cycle is reported with the pip versions that stall on it (docs/benchmarks.md).
LARGE_CYCLE = 10


@dataclass(frozen=True)
class DistCycle:
    """Dists that all require each other, directly or not: installing one installs them all."""

    members: tuple[Address, ...]  # sorted
    # One edge out of each member to another member: where to start breaking the cycle.
    edges: tuple[DependencyEdge, ...]

    @property
    def size(self) -> int:
        return len(self.members)


_DEPENDENCIES: PerPlan[DistPlan, tuple[Address, ...]] = PerPlan(
    lambda plan: tuple(dep.identity.address for dep in plan.first_party)
)
# The dependency graph of the last export in this process, condensed: the graph rarely changes
# between two exports (never after an edit of a module's body), and equal graphs condense equally.
_LAST: list[tuple[dict[Address, tuple[Address, ...]], Condensed[Address]]] = []


def condensed_dependencies(plans: Iterable[DistPlan]) -> Condensed[Address]:
    """The first-party dependency graph of `plans`, its cycles condensed (graphs.py)."""
    graph = {plan.identity.address: _DEPENDENCIES(plan) for plan in plans}
    if not _LAST or _LAST[0][0] != graph:
        _LAST[:] = [(graph, condense(graph))]
    return _LAST[0][1]


def dist_cycles(plans: Mapping[Address, DistPlan]) -> tuple[DistCycle, ...]:
    cycles = []
    for members in condensed_dependencies(plans.values()).cycles():
        inside = set(members)
        edges = []
        for member in members:
            dep = next(d for d in plans[member].first_party if d.identity.address in inside)
            edges.append(dep.edges[0])
        cycles.append(DistCycle(members, tuple(edges)))
    return tuple(cycles)


CYCLES = Cause(
    "dependency cycles between dists (installing any member installs all of them)",
    "Break each by moving what the members share into a target of its own; `--explain=DIST` "
    "names a dist's cycle.",
    one="dependency cycle between dists (installing any member installs all of them)",
)
LARGE_CYCLES = Cause(
    CYCLES.title,
    CYCLES.fix
    + " pip 23.0 to 25.1 can take many minutes to resolve a large cycle whose members require each "
    "other densely (a 30-dist cycle: more than 120 s with pip 23.0.1, seconds with pip >= 25.2 and "
    "uv; docs/benchmarks.md): install with pip >= 25.2 or uv.",
    one=CYCLES.one,
)


def cycle_findings(cycles: Iterable[DistCycle], plans: Mapping[Address, DistPlan]) -> list[Finding]:
    """One finding per cycle, largest first: its size, members and an edge out of each of the first."""
    ordered = sorted(cycles, key=lambda c: (-c.size, c.members))
    # One cause for all cycles; it carries the note on old pips when any cycle is large.
    cause = LARGE_CYCLES if any(c.size >= LARGE_CYCLE for c in ordered) else CYCLES
    findings = []
    for cycle in ordered:
        names = [plans[a].identity.name or a.spec for a in cycle.members]
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        edges = "; ".join(f"{e.source.spec} -> {e.target.spec}" for e in cycle.edges[:3])
        findings.append(
            Finding(cause, f"{cycle.size} dists ({shown}); edges in it: {edges}{' ...' if cycle.size > 3 else ''}")
        )
    return findings

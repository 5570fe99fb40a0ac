"""Environment dists: one `export_dists_environment` target -> one dist pinning a whole consistent set.

An environment's plan starts as any target's (dists.py: its explicit dependencies are its direct
first-party and third-party edges). Once the export knows every plan of the closure, the
environment's first-party dependencies become its whole first-party closure and its third-party
requirements the union of theirs; Requires-Dist then renders it like any dist (requirements.py),
and the rendered third-party lines are checked for conflicts. Everything here is plain Python.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Sequence

from pants.engine.addresses import Address
from pants.util.strutil import softwrap

from export_dists_core.compat import (
    InvalidRequirement,
    InvalidSpecifier,
    Marker,
    SpecifierSet,
    UndefinedComparison,
    UndefinedEnvironmentName,
    canonicalize_name,
)
from export_dists.dists import (
    DependencyEdge,
    DistKind,
    DistPlan,
    FirstPartyDependency,
    ThirdPartyRequirement,
    generator_address,
)
from export_dists_core.graphs import Condensed, condense
from export_dists.requirements import RequirementLine, parse_requirement


class EnvironmentConflict(Exception):
    pass


def is_environment(plan: DistPlan) -> bool:
    return plan.identity.kind == DistKind.ENVIRONMENT


def dependency_graph(plans: Mapping[Address, DistPlan]) -> Condensed[Address]:
    """The first-party graph of the plans as dists.py made them (direct edges)."""
    return condense({address: [dep.identity.address for dep in plan.first_party] for address, plan in plans.items()})


def closure_of(
    root: Address, plans: Mapping[Address, DistPlan], graph: Condensed[Address] | None = None
) -> tuple[Address, ...]:
    """Every dist reachable from `root` through first-party dependencies, `root` left out, sorted.

    Follows the plans as dists.py made them (direct edges), so a nested environment brings its
    members, and cycles end. Pass `graph` (dependency_graph(plans)) when asking for several roots.
    """
    return (graph or dependency_graph(plans)).reachable(root)


def _merge_requires_python(values: Iterable[str | None]) -> str | None:
    """The intersection of the members' Requires-Python (those that have one)."""
    texts = sorted({v for v in values if v})
    if not texts:
        return None
    try:
        return str(SpecifierSet(",".join(texts))) or None
    except InvalidSpecifier:
        return None  # left out rather than guessed, as dists.requires_python_for does


def flatten_environment(
    environment: DistPlan, plans: Mapping[Address, DistPlan], graph: Condensed[Address] | None = None
) -> DistPlan:
    """The environment's plan with its whole first-party closure and the union of its third party.

    Each first-party dependency keeps every edge (within the closure) that brought it in, so
    `--explain` shows why a dist is in the set; each third-party requirement keeps the edges of
    every member that requires it.
    """
    address = environment.identity.address
    members = closure_of(address, plans, graph)
    in_set = {address, *members}
    edges: dict[Address, list[DependencyEdge]] = {m: [] for m in members}
    for source in sorted(in_set):
        for dep in plans[source].first_party:
            if dep.identity.address in edges:
                edges[dep.identity.address].extend(dep.edges)
    first_party = tuple(
        FirstPartyDependency(plans[m].identity, tuple(edges[m])) for m in members
    )

    third: dict[tuple[str, Address], tuple[str | None, list[DependencyEdge]]] = {}
    for source in sorted(in_set):
        for req in plans[source].third_party:
            _, found = third.setdefault((req.requirement, req.address), (req.resolve, []))
            found.extend(req.edges)
    third_party = tuple(
        ThirdPartyRequirement(requirement, req_address, resolve, tuple(found))
        for (requirement, req_address), (resolve, found) in sorted(third.items())
    )
    return dataclasses.replace(
        environment,
        first_party=first_party,
        third_party=third_party,
        requires_python=_merge_requires_python(plans[m].requires_python for m in members),
    )


def flatten_environments(plans: Mapping[Address, DistPlan]) -> dict[Address, DistPlan]:
    """Every plan, with each environment's flattened (from the plans as they were, not in turn)."""
    if not any(is_environment(p) for p in plans.values()):
        return dict(plans)
    graph = dependency_graph(plans)
    return {a: flatten_environment(p, plans, graph) if is_environment(p) else p for a, p in plans.items()}


# Interpreters markers are evaluated for to decide whether two markers can hold at once: every
# Python from 2.7 on, the three common platforms, CPython and PyPy. A marker on anything else
# (e.g. platform_release) takes this machine's value.
_PYTHONS = ("2.7", *(f"3.{minor}" for minor in range(6, 16)))
_PLATFORMS = (
    {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "platform_machine": "x86_64"},
    {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix", "platform_machine": "arm64"},
    {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt", "platform_machine": "AMD64"},
)
_IMPLEMENTATIONS = (
    {"implementation_name": "cpython", "platform_python_implementation": "CPython"},
    {"implementation_name": "pypy", "platform_python_implementation": "PyPy"},
)


def _environments() -> Iterator[dict[str, str]]:
    for python, platform, implementation in itertools.product(_PYTHONS, _PLATFORMS, _IMPLEMENTATIONS):
        for patch in ("0", "99"):
            yield {
                "python_version": python,
                "python_full_version": f"{python}.{patch}",
                "implementation_version": f"{python}.{patch}",
                "extra": "",
                **platform,
                **implementation,
            }


def markers_can_overlap(first: Marker | None, second: Marker | None) -> bool:
    """Whether some interpreter satisfies both markers (no marker always holds).

    Decided by evaluating both over common interpreters and platforms (see _PYTHONS): markers
    that hold together nowhere among them, such as `python_version < "3.11"` and
    `python_version >= "3.11"`, do not overlap. A marker that cannot be evaluated overlaps.
    """
    if first is None or second is None:
        return True
    for environment in _environments():
        try:
            if first.evaluate(environment) and second.evaluate(environment):
                return True
        except (UndefinedComparison, UndefinedEnvironmentName):
            return True
    return False


@dataclass(frozen=True)
class Conflict:
    project: str
    first: RequirementLine
    second: RequirementLine


def third_party_conflicts(lines: Sequence[RequirementLine]) -> tuple[Conflict, ...]:
    """Pairs of third-party lines for one project that ask for different versions.

    Two lines conflict when their version specifiers (or URLs) differ and their markers can hold
    at once. Identical lines were merged already; lines that differ only in extras, or whose
    markers exclude each other, are not conflicts: one install satisfies both.
    """
    by_project: dict[str, list[tuple[RequirementLine, object]]] = {}
    for line in lines:
        if line.first_party:
            continue
        try:
            parsed = parse_requirement(line.text)
        except InvalidRequirement:
            continue  # exported as written; nothing to compare it by
        by_project.setdefault(canonicalize_name(parsed.name), []).append((line, parsed))
    conflicts = []
    for project, found in sorted(by_project.items()):
        for (a, pa), (b, pb) in itertools.combinations(found, 2):
            if (str(pa.specifier), pa.url) == (str(pb.specifier), pb.url):  # type: ignore[attr-defined]
                continue
            if markers_can_overlap(pa.marker, pb.marker):  # type: ignore[attr-defined]
                conflicts.append(Conflict(project, a, b))
    return tuple(conflicts)


def _origin(line: RequirementLine) -> str:
    """`attrs>=23 (3rdparty/python:reqs#attrs, required by src/python/a:a)`."""
    requirement_targets = sorted({e.target.spec for e in line.edges})
    members = sorted({generator_address(e.source).spec for e in line.edges})
    shown = ", ".join(members[:3]) + (f" and {len(members) - 3} more" if len(members) > 3 else "")
    return f"`{line.text}` from {', '.join(requirement_targets)}, required by {shown}"


def check_conflicts(environment: DistPlan, lines: Sequence[RequirementLine]) -> None:
    """Raise EnvironmentConflict naming both requirement targets of every conflict."""
    conflicts = third_party_conflicts(lines)
    if not conflicts:
        return
    problems = "\n".join(
        f"- {c.project}: {_origin(c.first)}\n  and {_origin(c.second)}" for c in conflicts
    )
    raise EnvironmentConflict(
        softwrap(
            f"""
            The environment {environment.identity.name} ({environment.identity.address}) is one
            consistent set, but its members ask for different versions of the same third-party
            project:
            """
        )
        + f"\n\n{problems}\n\n"
        + softwrap(
            """
            Make the members depend on one `python_requirement` per project (one line), or leave
            one of them out of the environment.
            """
        )
    )


def environment_description(environment: DistPlan, sha: str) -> str:
    """The long description of an environment's wheel."""
    return softwrap(
        f"""
        Exported by export-dists from the Pants target `{environment.identity.address.spec}`
        (`export_dists_environment`) at commit `{sha}`. This wheel holds no files: it pins
        {len(environment.first_party)} first-party dists `==` their versions in the same export
        and lists the union of their third-party requirements, so installing it installs the
        whole set.
        """
    )

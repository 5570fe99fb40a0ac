"""What an export refuses or warns about once every dist is planned: name collisions, shared files,
split packages, unexportable dependencies, URL requirements.

Every check runs over every dist of every export, so what it needs of one plan (its project name,
its files' parents, its unimportable files) is derived once per plan (per_plan.py): after a one-leaf
commit in pantsd the checks are a few dictionary passes over 10,000 dists, not string work on each.
"""
from __future__ import annotations

from dataclasses import dataclass

from pants.engine.addresses import Address
from pants.util.strutil import softwrap

from export_dists.cycles import cycle_findings, dist_cycles
from export_dists.dists import DistKind, DistPlan
from export_dists.findings import Cause, Finding
from export_dists.importable import UNIMPORTABLE, unimportable_files
from export_dists.export_types import PlannedDist
from export_dists_core.naming import normalize
from export_dists.per_plan import PerPlan
from export_dists.subsystem import UnexportableDependencies
from export_dists.url_requirements import url_of, url_requirement_findings


class DistNameCollision(Exception):
    pass


class UnexportableDependencyError(Exception):
    pass


@dataclass(frozen=True)
class _PlanFacts:
    """What the checks read of one plan, derived once per plan (per_plan.py)."""

    project: str  # the normalized dist name
    wheel_paths: tuple[str, ...]
    packages: tuple[str, ...]  # directories in which the dist installs an `__init__.py` ("." at the top)
    parents: frozenset[str]  # every directory its files are in, with theirs ("." included)
    unimportable: Finding | None


def _facts_of(plan: DistPlan) -> _PlanFacts:
    assert plan.identity.name is not None
    wheel_paths = tuple(f.wheel_path for f in plan.files)
    packages = []
    for wheel_path in wheel_paths:
        parent, _, name = wheel_path.rpartition("/")
        if name == "__init__.py":
            packages.append(parent or ".")
    return _PlanFacts(
        project=normalize(plan.identity.name),
        wheel_paths=wheel_paths,
        packages=tuple(packages),
        parents=frozenset(parent for wheel_path in wheel_paths for parent in _parents(wheel_path)),
        unimportable=_unimportable_finding(plan),
    )


_FACTS: PerPlan[DistPlan, _PlanFacts] = PerPlan(_facts_of)


def check_plans(plans: dict[Address, DistPlan], unexportable: UnexportableDependencies) -> list[Finding]:
    """Every check of the planned dists: raises on a refusal, returns what to warn about (findings.py)."""
    check_collisions(plans)
    return [
        *_unexportable(plans, unexportable),
        *_shared_files(plans),
        *_packages_split_across_dists(plans),
        *cycle_findings(dist_cycles(plans), plans),
        *_unimportable(plans),
    ]


def check_collisions(plans: dict[Address, DistPlan]) -> None:
    seen: dict[str, Address] = {}
    for address, plan in sorted(plans.items()):
        project = _FACTS(plan).project
        if project in seen:
            raise DistNameCollision(
                softwrap(
                    f"""
                    The targets {seen[project]} and {address} would both be exported as the dist
                    {project!r}. Rename one of them, set `export_dist_name="..."` on one, or
                    `skip_export_dist=True` to leave one out.
                    """
                )
            )
        seen[project] = address


SHARED_FILES = Cause(
    "paths installed by more than one dist",
    softwrap(
        """
        Each is the same path under two source roots, or a parametrized target (one dist per
        parametrization): the dists overwrite each other's file. Rename one, or move the shared
        module into one target and depend on it.
        """
    ),
    one="path installed by more than one dist",
)


def _shared_files(plans: dict[Address, DistPlan]) -> list[Finding]:
    """Two dists that install the same path overwrite each other, and uninstalling one breaks both."""
    # One owner per path and a list only for a path shared: no list per file of every dist per run.
    owner: dict[str, Address] = {}
    shared: dict[str, list[Address]] = {}
    for address, plan in sorted(plans.items()):
        for wheel_path in _FACTS(plan).wheel_paths:
            first = owner.setdefault(wheel_path, address)
            if first != address:
                shared.setdefault(wheel_path, [first]).append(address)
    return [
        Finding(SHARED_FILES, f"{path} would be installed by {len(addresses)} dists ({', '.join(a.spec for a in addresses)})")
        for path, addresses in sorted(shared.items())
    ]


SPLIT_PACKAGES = Cause(
    "regular packages (with an __init__.py) that other dists install files inside",
    softwrap(
        """
        pip and uv install every dist into one site-packages, where those files import; a PEX
        keeps each wheel on its own sys.path entry, where Python looks for a regular package's
        modules and data files only beside its __init__.py: build PEXes with
        `--venv --venv-site-packages-copies`, keep the package in one target, or make it a
        namespace package (no __init__.py).
        """
    ),
    one="regular package (with an __init__.py) that other dists install files inside",
)


def _parents(wheel_path: str) -> list[str]:
    """PurePosixPath(wheel_path).parents as strings ("a/b/c.py": "a/b", "a", "."), without making a
    path object per file and parent (30,000 files at 10,000 dists, every export)."""
    parents = []
    while "/" in wheel_path:
        wheel_path = wheel_path.rpartition("/")[0]
        parents.append(wheel_path)
    parents.append(".")
    return parents


def _packages_split_across_dists(plans: dict[Address, DistPlan]) -> list[Finding]:
    """A regular package (one with `__init__.py`) whose files other dists also install."""
    init_owner: dict[str, Address] = {}
    for address, plan in plans.items():
        for package in _FACTS(plan).packages:
            init_owner.setdefault(package, address)
    inside: dict[str, set[Address]] = {}
    for address, plan in plans.items():
        for parent in _FACTS(plan).parents:
            owner = init_owner.get(parent)
            if owner is not None and owner != address:
                inside.setdefault(parent, set()).add(address)
    findings = []
    for package, addresses in sorted(inside.items()):
        owner_plan = plans[init_owner[package]]
        names = sorted(plans[a].identity.name or a.spec for a in addresses)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        findings.append(
            Finding(
                SPLIT_PACKAGES,
                f"{package}/__init__.py (dist {owner_plan.identity.name}, {init_owner[package]}) makes "
                f"`{package.replace('/', '.')}` a regular package, but other dists install files inside it: {shown}",
            )
        )
    return findings


def _unexportable(plans: dict[Address, DistPlan], policy: UnexportableDependencies) -> list[Finding]:
    problems = []
    for address, plan in sorted(plans.items()):
        for dep in plan.not_exportable:
            edge = dep.edges[0]
            problems.append(
                (
                    f"{address} (dist {plan.identity.name}) depends on {dep.identity.address} "
                    f"(`{dep.identity.alias}`, via {edge.source} -> {edge.target})",
                    dep.identity.not_exportable_because or "",
                )
            )
    if problems and policy == UnexportableDependencies.ERROR:
        raise UnexportableDependencyError(
            "These dependencies cannot be exported as dists:\n\n"
            + "\n".join(f"- {problem}: {why}." for problem, why in problems)
            + "\n\nFix each one as it says, or set [export-dists].unexportable_dependencies = "
            '"warn" to export without them.'
        )
    # One cause per reason (a `files` target, a test, skip_export_dist, a skip_paths pattern...).
    return [
        Finding(
            Cause(
                "dependencies left out of Requires-Dist: they cannot be dists",
                f"Why: {why}.",
                one="dependency left out of Requires-Dist: it cannot be a dist",
            ),
            problem,
        )
        for problem, why in problems
    ]


def url_requirement_findings_of(planned: list[PlannedDist]) -> list[Finding]:
    dists_by_url_requirement: dict[str, list[str]] = {}
    mapped: dict[str, str] = {}
    for p in planned:
        for line in p.requirements:
            if line.mapped_from:
                mapped[line.mapped_from] = line.text
            elif not line.first_party and url_of(line.text):
                dists_by_url_requirement.setdefault(line.text, []).append(p.plan.identity.name or "")
    return url_requirement_findings(dists_by_url_requirement, mapped)


def _unimportable(plans: dict[Address, DistPlan]) -> list[Finding]:
    found = (_FACTS(plan).unimportable for _, plan in sorted(plans.items()))
    return [finding for finding in found if finding is not None]


def _unimportable_finding(plan: DistPlan) -> Finding | None:
    if plan.identity.kind != DistKind.PYTHON:
        return None  # a resources dist's files are read by path, not imported
    found = unimportable_files(f.wheel_path for f in plan.files)
    if not found:
        return None
    shown = ", ".join(f"{u.wheel_path} ({u.why})" for u in found[:3])
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return Finding(UNIMPORTABLE, f"{plan.identity.name} ({plan.identity.address.spec}): {shown}{more}")

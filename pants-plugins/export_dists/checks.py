"""What an export refuses or warns about once every dist is planned: name collisions, shared files,
split packages, unexportable dependencies, URL requirements."""
from __future__ import annotations

import logging
from pathlib import PurePosixPath

from pants.engine.addresses import Address
from pants.util.strutil import softwrap

from export_dists.cycles import dist_cycles, report_cycles
from export_dists.dists import DistPlan
from export_dists.export_types import PlannedDist
from export_dists_core.naming import normalize
from export_dists.subsystem import UnexportableDependencies
from export_dists.url_requirements import report_url_requirements, url_of

logger = logging.getLogger(__name__)


class DistNameCollision(Exception):
    pass


class UnexportableDependencyError(Exception):
    pass


def check_plans(plans: dict[Address, DistPlan], unexportable: UnexportableDependencies) -> None:
    """Every check of the planned dists: raises on a refusal, logs each warning."""
    check_collisions(plans)
    report_shared_files(plans)
    report_packages_split_across_dists(plans)
    report_unexportable(plans, unexportable)
    report_cycles(dist_cycles(plans), plans)


def check_collisions(plans: dict[Address, DistPlan]) -> None:
    seen: dict[str, Address] = {}
    for address, plan in sorted(plans.items()):
        assert plan.identity.name is not None
        project = normalize(plan.identity.name)
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


def report_shared_files(plans: dict[Address, DistPlan]) -> None:
    """Two dists that install the same path overwrite each other, and uninstalling one breaks both."""
    owners: dict[str, list[Address]] = {}
    for address, plan in sorted(plans.items()):
        for owned in plan.files:
            owners.setdefault(owned.wheel_path, []).append(address)
    for path, addresses in sorted(owners.items()):
        if len(addresses) > 1:
            logger.warning(
                f"{path} would be installed by {len(addresses)} dists ("
                + ", ".join(a.spec for a in addresses)
                + "): the same path under two source roots, or a parametrized target (one dist "
                "per parametrization). Rename one, or move the shared module into one target and "
                "depend on it."
            )


def report_packages_split_across_dists(plans: dict[Address, DistPlan]) -> None:
    """A regular package (one with `__init__.py`) whose files other dists also install.

    pip and uv install every dist into one site-packages, where the files meet again. A PEX keeps
    each wheel on its own sys.path entry, and Python looks for a regular package's modules only
    beside its `__init__.py`: the other dists' modules and data files are not found there.
    """
    init_owner: dict[str, Address] = {}
    for address, plan in plans.items():
        for owned in plan.files:
            if PurePosixPath(owned.wheel_path).name == "__init__.py":
                init_owner.setdefault(str(PurePosixPath(owned.wheel_path).parent), address)
    inside: dict[str, set[Address]] = {}
    for address, plan in plans.items():
        for owned in plan.files:
            for parent in PurePosixPath(owned.wheel_path).parents:
                owner = init_owner.get(str(parent))
                if owner is not None and owner != address:
                    inside.setdefault(str(parent), set()).add(address)
    for package, addresses in sorted(inside.items()):
        owner_plan = plans[init_owner[package]]
        names = sorted(plans[a].identity.name or a.spec for a in addresses)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        logger.warning(
            softwrap(
                f"""
                {package}/__init__.py (dist {owner_plan.identity.name}, {init_owner[package]}) makes
                `{package.replace("/", ".")}` a regular package, but other dists install files
                inside it: {shown}. pip and uv install them into one
                site-packages, where they import; a PEX keeps each wheel on its own sys.path
                entry, where those modules and data files are not found: build PEXes with
                `--venv --venv-site-packages-copies`, keep the package in one target, or make it
                a namespace package (no __init__.py).
                """
            )
        )


def report_unexportable(plans: dict[Address, DistPlan], policy: UnexportableDependencies) -> None:
    problems = []
    for address, plan in sorted(plans.items()):
        for dep in plan.not_exportable:
            edge = dep.edges[0]
            problems.append(
                f"{address} (dist {plan.identity.name}) depends on {dep.identity.address} "
                f"(`{dep.identity.alias}`, via {edge.source} -> {edge.target}): "
                f"{dep.identity.not_exportable_because}."
            )
    if not problems:
        return
    if policy == UnexportableDependencies.ERROR:
        raise UnexportableDependencyError(
            "These dependencies cannot be exported as dists:\n\n"
            + "\n".join(f"- {p}" for p in problems)
            + "\n\nFix each one as it says, or set [export-dists].unexportable_dependencies = "
            '"warn" to export without them.'
        )
    for problem in problems:
        logger.warning(f"{problem} It is left out of Requires-Dist.")


def report_url_requirements_of(planned: list[PlannedDist]) -> None:
    dists_by_url_requirement: dict[str, list[str]] = {}
    mapped: dict[str, str] = {}
    for p in planned:
        for line in p.requirements:
            if line.mapped_from:
                mapped[line.mapped_from] = line.text
            elif not line.first_party and url_of(line.text):
                dists_by_url_requirement.setdefault(line.text, []).append(p.plan.identity.name or "")
    report_url_requirements(dists_by_url_requirement, mapped)

"""One export: the dists of the requested targets and their first-party closure, as wheels."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import PurePosixPath

from pants.engine.addresses import Address
from pants.engine.fs import Digest, DigestContents, MergeDigests
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.strutil import softwrap

from export_dists.dists import DistIdentity, DistIdentityRequest, DistPlan, DistPlanRequest, NamingSettings
from export_dists.layout import ExportedDist, ExportInfo
from export_dists.naming import normalize
from export_dists.requirements import (
    LockfileVersions,
    LockfileVersionsRequest,
    RequirementLine,
    requires_dist,
    resolves_used,
)
from export_dists.subsystem import UnexportableDependencies
from export_dists.versioning import ExportCommit, ExportCommitRequest, render_version
from export_dists.wheel import CoreMetadata, Wheel, build_wheel, provenance_json

logger = logging.getLogger(__name__)


class DistNameCollision(Exception):
    pass


class UnexportableDependencyError(Exception):
    pass


@dataclass(frozen=True)
class ExportRequest:
    roots: tuple[Address, ...]  # target generators (or lone targets) named by the specs
    settings: NamingSettings
    version_template: str
    allow_dirty: bool
    pin_from_lockfiles: bool
    unexportable: UnexportableDependencies
    output_dir: str | None = None  # where the export is written: its earlier exports are not changes


@dataclass(frozen=True)
class PlannedDist:
    plan: DistPlan
    requirements: tuple[RequirementLine, ...]


@dataclass(frozen=True)
class Export:
    info: ExportInfo
    dists: tuple[ExportedDist, ...]
    planned: tuple[PlannedDist, ...]  # same order as dists
    requested: tuple[Address, ...]
    skipped: tuple[DistIdentity, ...]  # named by the specs but not exportable


@dataclass(frozen=True)
class WheelSettings:
    """What every wheel of one export shares."""

    version: str
    sha: str
    namespace: str
    dirty: bool
    commit_epoch: int


def wheel_for(
    plan: DistPlan, requires: tuple[str, ...], settings: WheelSettings, contents: dict[str, bytes]
) -> Wheel:
    """The wheel of one planned dist (pure: the files' bytes are given)."""
    address = plan.identity.address.spec
    name = plan.identity.name
    assert name is not None
    metadata = CoreMetadata(
        name=name,
        version=settings.version,
        summary=f"Pants target {address} at commit {settings.sha}",
        requires_dist=requires,
        requires_python=plan.requires_python,
        keywords=("export-dists", f"sha={settings.sha}"),
        description=softwrap(
            f"""
            Exported by export-dists from the Pants target `{address}` at commit `{settings.sha}`.
            This wheel holds only that target's files; its first-party dependencies are separate
            dists pinned to the same commit.
            """
        ),
    )
    provenance = provenance_json(
        sha=settings.sha,
        address=address,
        namespace=settings.namespace,
        version=settings.version,
        dirty=settings.dirty,
    )
    return build_wheel(
        metadata,
        {owned.wheel_path: contents[owned.path] for owned in plan.files},
        timestamp=settings.commit_epoch,
        extra_dist_info={"export_dists.json": provenance},
    )


def _check_collisions(plans: dict[Address, DistPlan]) -> None:
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


def _report_shared_files(plans: dict[Address, DistPlan]) -> None:
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


def _report_packages_split_across_dists(plans: dict[Address, DistPlan]) -> None:
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
            for package in PurePosixPath(owned.wheel_path).parents:
                owner = init_owner.get(str(package))
                if owner is not None and owner != address:
                    inside.setdefault(str(package), set()).add(address)
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


def _report_unexportable(plans: dict[Address, DistPlan], policy: UnexportableDependencies) -> None:
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


@rule(desc="Plan and build an export")
async def build_export(request: ExportRequest) -> Export:
    identities = await MultiGet(
        Get(DistIdentity, DistIdentityRequest(address, request.settings)) for address in request.roots
    )
    requested = tuple(i.address for i in identities if i.exportable)
    skipped = tuple(i for i in identities if not i.exportable)

    # The first-party closure: an exported wheel pins its dependencies to this very version, so
    # they must be in the same export or the wheel could not be installed from it.
    plans: dict[Address, DistPlan] = {}
    frontier = list(requested)
    while frontier:
        found = await MultiGet(Get(DistPlan, DistPlanRequest(a, request.settings)) for a in frontier)
        for plan in found:
            plans[plan.identity.address] = plan
        frontier = sorted(
            {
                dep.identity.address
                for plan in found
                for dep in plan.first_party
                if dep.identity.address not in plans
            }
        )
    _check_collisions(plans)
    _report_shared_files(plans)
    _report_packages_split_across_dists(plans)
    _report_unexportable(plans, request.unexportable)

    commit = await Get(ExportCommit, ExportCommitRequest(request.allow_dirty, request.output_dir))
    version = render_version(request.version_template, commit)
    ordered = [plans[a] for a in sorted(plans)]

    lockfiles: dict[str, LockfileVersions] | None = None
    if request.pin_from_lockfiles and any(req.resolve is None for p in ordered for req in p.third_party):
        logger.warning(
            softwrap(
                """
                [export-dists].third_party_pins = "lockfile", but [python].enable_resolves is
                false, so there are no lockfiles to pin from: third-party requirements are
                exported as written. Enable resolves and run `pants generate-lockfiles`, or set
                third_party_pins = "as-written".
                """
            )
        )
    if request.pin_from_lockfiles:
        found_locks = await MultiGet(
            Get(LockfileVersions, LockfileVersionsRequest(resolve)) for resolve in resolves_used(ordered)
        )
        lockfiles = {lock.resolve: lock for lock in found_locks}
        for lock in found_locks:
            if lock.path is None:
                logger.warning(
                    f"[export-dists].third_party_pins = \"lockfile\", but the resolve {lock.resolve!r} "
                    "has no lockfile: its requirements are exported as written. Run "
                    "`pants generate-lockfiles`."
                )

    planned = [
        PlannedDist(plan, requires_dist(plan, version=version, lockfiles=lockfiles)) for plan in ordered
    ]
    # Every wheel carries the commit's version, so all of them are new for each commit: build them
    # in one pass over one read of the files, rather than one rule (and engine round trip) each.
    files = await Get(Digest, MergeDigests(p.plan.digest for p in planned))
    contents = {entry.path: entry.content for entry in await Get(DigestContents, Digest, files)}
    settings = WheelSettings(
        version=version,
        sha=commit.sha,
        namespace=request.settings.namespace,
        dirty=commit.dirty,
        commit_epoch=commit.commit_epoch,
    )
    wheels = [
        wheel_for(p.plan, tuple(line.text for line in p.requirements), settings, contents)
        for p in planned
    ]
    dists = tuple(
        ExportedDist(
            name=p.plan.identity.name or "",
            version=version,
            address=p.plan.identity.address.spec,
            wheel=wheel,
            requires_dist=tuple(line.text for line in p.requirements),
            requires_python=p.plan.requires_python,
        )
        for p, wheel in zip(planned, wheels)
    )
    info = ExportInfo(
        sha=commit.sha,
        version=version,
        count=commit.count,
        namespace=request.settings.namespace,
        dirty=commit.dirty,
        branches=commit.branches,
        tags=commit.tags,
        commit_time=commit.commit_time,
    )
    return Export(info, dists, tuple(planned), requested, skipped)


def rules():
    return collect_rules()

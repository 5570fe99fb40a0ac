"""The export rule: the dists of the requested targets and their first-party closure, as wheels.

Thin on purpose (as Pants' core/goals/export.py): it gathers the plans, runs the checks, asks for
versions and wheels, and returns the typed result. Each step lives in its own module: dists.py
(plans), checks.py, content_versions.py, requirements.py, wheels.py; export_types.py holds the values.
"""
from __future__ import annotations

import functools
import logging
import time
from typing import Mapping

from pants.backend.python.subsystems.setup import PythonSetup
from pants.base.build_root import BuildRoot
from pants.engine.addresses import Address
from pants.engine.internals.graph import OwnersRequest
from pants.engine.target import WrappedTargetRequest
from pants.engine.internals.build_files import BuildFileOptions
from pants.engine.rules import collect_rules, rule
from pants.util.strutil import softwrap

from export_dists.checks import check_plans, url_requirement_findings_of
from export_dists.content_versions import content_origins, versions_of, with_fingerprints
from export_dists import replan
from export_dists.dists import (
    ORIGIN,
    DistIdentity,
    DistIdentityRequest,
    DistPlan,
    DistPlanRequest,
    dist_identity,
    dist_plan,
    generator_address,
)
from export_dists.engine import by_name, concurrently, implicitly, owners, wrapped_target
from export_dists.environments import check_conflicts, flatten_environments, is_environment
from export_dists.export_types import DistOrigin, Export, ExportRequest, PlannedDist
from export_dists.findings import report
from export_dists_core.layout import ExportInfo
from export_dists.per_plan import PerPlan
from export_dists.requirements import (
    LockfileVersions,
    LockfileVersionsRequest,
    RequirementLine,
    lockfile_versions,
    requires_dist,
    resolves_used,
)
from export_dists.requirements import logger as requirements_logger
from export_dists.subsystem import VersionScheme
from export_dists.toplevel import TopLevelCheckRequest, check_top_level, stray_top_level_of, top_level_findings
from export_dists.url_requirements import UrlRequirementMap
from export_dists.replan import KeptPlans, PlanningContext, PlanningContextRequest, planning_context
from export_dists.versioning import (
    CommitDiffRequest,
    ExportCommit,
    ExportCommitRequest,
    commit_diff,
    export_commit,
    render_version,
)
from export_dists.wheels import exported_dists

logger = logging.getLogger(__name__)

__all__ = ["Export", "ExportRequest", "PlannedDist", "build_export", "rules"]


async def _closure_plans(
    request: ExportRequest, requested: tuple[Address, ...], known: Mapping[Address, DistPlan]
) -> dict[Address, DistPlan]:
    """The plans of the requested dists and their first-party closure: the `known` ones as they
    are, the others from the engine.

    An exported wheel pins its dependencies to their versions in this export, so they must be in
    the same export or the wheel could not be installed from it.
    """
    plans: dict[Address, DistPlan] = {}
    frontier = list(requested)
    while frontier:
        asked = [a for a in frontier if a not in known]
        found = [known[a] for a in frontier if a in known]
        found.extend(
            await concurrently(dist_plan(DistPlanRequest(a, request.settings), **implicitly()) for a in asked)
        )
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
    return plans


async def _lockfiles(request: ExportRequest, ordered: list[DistPlan]) -> dict[str, LockfileVersions] | None:
    """The versions in each resolve's lockfile, when third-party pins come from lockfiles."""
    if not request.pin_from_lockfiles:
        return None
    if any(req.resolve is None for p in ordered for req in p.third_party):
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
    found_locks = await concurrently(
        lockfile_versions(LockfileVersionsRequest(resolve), **implicitly()) for resolve in resolves_used(ordered)
    )
    for lock in found_locks:
        if lock.path is None:
            logger.warning(
                f"[export-dists].third_party_pins = \"lockfile\", but the resolve {lock.resolve!r} "
                "has no lockfile: its requirements are exported as written. Run "
                "`pants generate-lockfiles`."
            )
    return {lock.resolve: lock for lock in found_locks}


def _requirements_of(
    plan: DistPlan,
    pins: tuple[tuple[Address, str], ...],
    fallback: str,
    lockfiles: dict[str, LockfileVersions] | None,
    url_map: UrlRequirementMap,
) -> tuple[tuple[RequirementLine, ...], tuple[str, ...]]:
    warnings: list[str] = []
    lines = requires_dist(
        plan, version=fallback, versions=dict(pins), lockfiles=lockfiles, url_map=url_map, warn=warnings.append
    )
    return lines, tuple(warnings)


# Each dist's Requires-Dist lines and what they warned about, per plan and the pins they name: after a
# one-leaf commit only the changed dists and those whose pins moved are worked out again. The
# warnings are given again on every export, as if worked out anew.
_REQUIREMENTS: PerPlan[DistPlan, tuple[tuple[RequirementLine, ...], tuple[str, ...]]] = PerPlan(_requirements_of)


# One parsed map per setting, the same object each export: it is part of _REQUIREMENTS' context, and
# parsed requirements (packaging 21.3) compare by identity.
_url_map = functools.lru_cache(maxsize=4)(UrlRequirementMap.parse)


def _planned(
    ordered: list[DistPlan],
    version: str,
    versions: dict[Address, str],
    origins: dict[Address, DistOrigin],
    lockfiles: dict[str, LockfileVersions] | None,
    request: ExportRequest,
) -> list[PlannedDist]:
    """Each dist with its Requires-Dist lines, version and origin (environments checked for conflicts)."""
    url_map = _url_map(request.url_requirement_map)
    planned = []
    for plan in ordered:
        dependencies = [d.identity.address for d in plan.first_party]
        pins = tuple((a, versions[a]) for a in dependencies if a in versions)
        # The export's own version pins a dependency with no version of its own (none, in practice).
        fallback = version if len(pins) < len(dependencies) else ""
        lines, warnings = _REQUIREMENTS(plan, pins, fallback, lockfiles, url_map)
        for warning in warnings:
            requirements_logger.warning(warning)
        if is_environment(plan):
            check_conflicts(plan, lines)
        planned.append(PlannedDist(plan, lines, versions[plan.identity.address], origins[plan.identity.address]))
    return planned


class _Laps:
    """Where a rule's time goes, step by step (what each step awaits included): `laps("checks")`
    ends a step; str() says it all."""

    def __init__(self) -> None:
        self._start = self._last = time.monotonic()
        self._laps: list[str] = []

    def __call__(self, step: str) -> None:
        now = time.monotonic()
        self._laps.append(f"{step} {now - self._last:.2f} s")
        self._last = now

    def __str__(self) -> str:
        return f"{time.monotonic() - self._start:.2f} s ({', '.join(self._laps)})"


async def _edited(request: ExportRequest, commit: ExportCommit, kept: KeptPlans) -> frozenset[Address] | str:
    """The targets owning the files the commit edited since the kept export, or why every dist must
    be planned (replan.py)."""
    if commit.dirty:
        return "the work tree has uncommitted changes"
    if kept.roots != request.roots:
        return "the specs name other targets than the export before"
    paths: tuple[str, ...] = ()
    if kept.sha != commit.sha:
        diff = await commit_diff(CommitDiffRequest(kept.sha, commit.sha), **implicitly())
        if diff.output is None:
            return f"git cannot diff {kept.sha[:12]} and {commit.sha[:12]}"
        paths, why = replan.modified_files(diff.output)
        why = why or replan.unsafe_file(paths, kept.context.build_files)
        if why:
            return why
    found = await concurrently(owners(OwnersRequest((path,))) for path in paths)
    addresses = sorted({address for owned in found for address in owned})
    wrapped = await concurrently(
        wrapped_target(WrappedTargetRequest(a, description_of_origin=ORIGIN)) for a in addresses
    )
    target_of = {w.target.address: w.target for w in wrapped}
    for path, owned in zip(paths, found):
        why = replan.unsafe_owner(path, tuple(target_of[a] for a in owned))
        if why:
            return why
    logger.debug(f"export-dists plans: the commit edited {len(paths)} files of {len(addresses)} targets")
    return frozenset(generator_address(a) for a in addresses)


async def _kept_plans(
    request: ExportRequest, commit: ExportCommit, context: PlanningContext
) -> tuple[tuple[DistIdentity, ...], dict[Address, DistPlan]] | None:
    """The roots' identities and the plans this export keeps from the one before (all but those of
    the dists the commit edited), or None to plan everything."""
    kept = replan.kept_for(context) if request.reuse_plans else None
    if kept is None:
        return None
    if isinstance(kept, str):
        logger.debug(f"export-dists plans: planning all dists: {kept}")
        return None
    edited = await _edited(request, commit, kept)
    if isinstance(edited, str):
        logger.debug(f"export-dists plans: planning all dists: {edited}")
        return None
    plans = {a: p for a, p in kept.plans.items() if a not in edited}
    logger.debug(
        f"export-dists plans: kept {len(plans)} of {len(kept.plans)} from the export of {kept.sha[:12]}, "
        f"planning {len(kept.plans) - len(plans)} again"
    )
    return kept.identities, plans


@by_name
@rule(desc="Plan and build an export")
async def build_export(
    request: ExportRequest, build_files: BuildFileOptions, python_setup: PythonSetup, build_root: BuildRoot
) -> Export:
    laps = _Laps()
    # First: whether the plans of the export before can be kept depends on it (replan.py).
    commit = await export_commit(ExportCommitRequest(request.allow_dirty, request.output_dir), **implicitly())
    laps("commit")
    context = await planning_context(PlanningContextRequest(request.settings), **implicitly())
    kept = await _kept_plans(request, commit, context)
    if kept is None:
        identities = await concurrently(
            dist_identity(DistIdentityRequest(address, request.settings), **implicitly()) for address in request.roots
        )
    else:
        identities = kept[0]
    requested = tuple(i.address for i in identities if i.exportable)
    skipped = tuple(i for i in identities if not i.exportable)

    closure = await _closure_plans(request, requested, kept[1] if kept else {})
    if not commit.dirty:
        replan.keep(KeptPlans(context, commit.sha, request.roots, identities, closure))
    # An environment pins its whole closure and the union of its third party (environments.py).
    # In address order once: each check's own sort of it is then one linear pass.
    plans = dict(sorted(flatten_environments(closure).items()))
    laps("plans")
    findings = check_plans(plans, request.unexportable)
    ordered = list(plans.values())
    top_level = await check_top_level(
        TopLevelCheckRequest(stray_top_level_of(ordered), request.refuse_top_level), **implicitly()
    )
    findings.extend(top_level_findings(top_level.stray))
    laps("checks")

    version = render_version(request.version_template, commit)
    lockfiles = await _lockfiles(request, ordered)

    head = DistOrigin(commit.sha, commit.count, commit.commit_epoch, commit.commit_time, commit.dirty)
    if request.version_scheme == VersionScheme.CONTENT:
        origins = await content_origins(
            ordered, commit, request.pin_from_lockfiles, build_files, python_setup, build_root
        )
    else:
        origins = {plan.identity.address: head for plan in ordered}
    versions = versions_of(request.version_template, origins)
    laps("origins")
    derived = _REQUIREMENTS.derived
    planned = _planned(ordered, version, versions, origins, lockfiles, request)
    logger.debug(
        f"Requires-Dist of {_REQUIREMENTS.derived - derived} of {len(ordered)} dists worked out anew; the "
        "others' kept from an earlier export in this process (their plans and pins are the same)."
    )
    findings.extend(url_requirement_findings_of(planned))
    report(findings, request.warning_examples)
    planned = with_fingerprints(planned, request)
    laps("requirements and fingerprints")
    dists = await exported_dists(planned, request)
    laps("wheels")
    # Where the rule's body spent its time (the engine's before the body ran is the goal's to say).
    logger.debug(f"export-dists timings: the plan rule {laps} for {len(ordered)} dists")
    info = ExportInfo(
        sha=commit.sha,
        version=version,
        count=commit.count,
        namespace=request.settings.namespace,
        dirty=commit.dirty,
        branches=commit.branches,
        tags=commit.tags,
        commit_time=commit.commit_time,
        version_scheme=request.version_scheme.value,
    )
    return Export(info, dists, tuple(planned), requested, skipped)


def rules():
    return collect_rules()

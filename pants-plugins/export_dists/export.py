"""One export: the dists of the requested targets and their first-party closure, as wheels."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import PurePosixPath

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import PythonRequirementsField
from pants.base.build_root import BuildRoot
from pants.engine.addresses import Address
from pants.engine.fs import Digest, DigestContents, MergeDigests
from pants.engine.internals.build_files import BuildFileOptions
from pants.engine.target import AllTargets
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.strutil import softwrap

from export_dists.cycles import dist_cycles, report_cycles
from export_dists.dists import DistIdentity, DistIdentityRequest, DistPlan, DistPlanRequest, NamingSettings
from export_dists.environments import check_conflicts, environment_description, flatten_environments, is_environment
import export_dists_core
from export_dists_core.layout import ExportedDist, ExportInfo
from export_dists_core.naming import normalize
from export_dists.requirements import (
    LockfileVersions,
    LockfileVersionsRequest,
    RequirementLine,
    requires_dist,
    resolves_used,
)
from export_dists.origins import DistInputs, InputIndex, condense, find_origins
from export_dists.subsystem import UnexportableDependencies, VersionScheme
from export_dists.versioning import (
    CommitVersion,
    ExportCommit,
    ExportCommitRequest,
    FirstParentHistory,
    HistoryRequest,
    render_version,
)
from export_dists.toplevel import TopLevelCheck, TopLevelCheckRequest
from export_dists.url_requirements import UrlRequirementMap, report_url_requirements, url_of
from export_dists_core.wheel import CoreMetadata, Wheel, build_wheel, provenance_json

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
    version_scheme: VersionScheme = VersionScheme.CONTENT
    url_requirement_map: FrozenDict[str, str] = FrozenDict()  # project -> plain requirement
    refuse_top_level: bool = True  # refuse a top-level `__init__.py` or `tests` (not while explaining)


@dataclass(frozen=True)
class PlannedDist:
    plan: DistPlan
    requirements: tuple[RequirementLine, ...]
    version: str = ""
    origin: DistOrigin | None = None
    fingerprint: str = ""


@dataclass(frozen=True)
class DistOrigin:
    """The commit a dist's version names: the exported one, or where its content appeared."""

    sha: str
    count: int
    epoch: int
    time: str
    dirty: bool = False  # its files differ from that commit (uncommitted changes)


@dataclass(frozen=True)
class Export:
    info: ExportInfo
    dists: tuple[ExportedDist, ...]
    planned: tuple[PlannedDist, ...]  # same order as dists
    requested: tuple[Address, ...]
    skipped: tuple[DistIdentity, ...]  # named by the specs but not exportable


@dataclass(frozen=True)
class WheelSettings:
    """What a wheel carries besides its files and requirements."""

    version: str
    sha: str  # the commit the version names
    namespace: str
    dirty: bool
    commit_epoch: int
    fingerprint: str | None = None  # recorded in export_dists.json (version_scheme = "content")


def wheel_for(
    plan: DistPlan, requires: tuple[str, ...], settings: WheelSettings, contents: dict[str, bytes]
) -> Wheel:
    """The wheel of one planned dist (pure: the files' bytes are given)."""
    address = plan.identity.address.spec
    name = plan.identity.name
    assert name is not None
    environment = is_environment(plan)
    metadata = CoreMetadata(
        name=name,
        version=settings.version,
        summary=f"Pants target {address} at commit {settings.sha}",
        requires_dist=requires,
        requires_python=plan.requires_python,
        keywords=("export-dists", f"sha={settings.sha}"),
        description=environment_description(plan, settings.sha)
        if environment
        else softwrap(
            f"""
            Exported by export-dists from the Pants target `{address}` at commit `{settings.sha}`.
            This wheel holds only that target's files; its first-party dependencies are separate
            dists pinned to the same commit.
            """
            if settings.fingerprint is None
            else f"""
            Exported by export-dists from the Pants target `{address}` as of commit
            `{settings.sha}`, the newest commit that changed it or its first-party dependencies.
            This wheel holds only that target's files; its first-party dependencies are separate
            dists, pinned to their own versions.
            """
        ),
    )
    provenance = provenance_json(
        sha=settings.sha,
        address=address,
        namespace=settings.namespace,
        version=settings.version,
        dirty=settings.dirty,
        fingerprint=settings.fingerprint,
        environment=environment,
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


def _versions(template: str, origins: dict[Address, DistOrigin]) -> dict[Address, str]:
    rendered: dict[DistOrigin, str] = {}
    for origin in origins.values():
        if origin not in rendered:
            rendered[origin] = render_version(template, CommitVersion(origin.sha, origin.count, origin.dirty), warn=False)
    return {address: rendered[origin] for address, origin in origins.items()}


def _key(address: Address) -> str:
    return address.spec


async def _content_origins(
    plans: list[DistPlan],
    commit: ExportCommit,
    pin_from_lockfiles: bool,
    build_files: BuildFileOptions,
    python_setup: PythonSetup,
    build_root: BuildRoot,
) -> dict[Address, DistOrigin]:
    """Each dist's origin: one walk of the first-parent history (see origins.py)."""
    history, all_targets = await MultiGet(
        Get(FirstParentHistory, HistoryRequest(commit.sha)), Get(AllTargets)
    )
    inputs = {
        _key(plan.identity.address): DistInputs(
            files=tuple(f.path for f in plan.files),
            includes=plan.includes,
            excludes=plan.excludes,
            directories=plan.directories,
            imports=plan.imports,
        )
        for plan in plans
    }
    lockfiles = set(python_setup.resolves.values()) if python_setup.enable_resolves else set()
    # The plugin's own code, and the core it shares with other exporters, shape every wheel when
    # they live in the repository (pants-plugins/, core/).
    own_code = [
        os.path.relpath(os.path.dirname(os.path.abspath(module)), os.path.realpath(build_root.path))
        for module in (__file__, export_dists_core.__file__)
    ]
    index = InputIndex(
        inputs,
        build_patterns=build_files.patterns,
        repository_wide=sorted(lockfiles) if pin_from_lockfiles else (),
        # Where third-party requirements are defined (BUILD, requirements.txt, pyproject.toml):
        # a removed requirement changes Requires-Dist of dists that no longer list it.
        repository_wide_directories=sorted(
            {t.address.spec_path for t in all_targets if t.has_field(PythonRequirementsField)}
        ),
        repository_wide_trees=tuple(tree for tree in own_code if not tree.startswith("..")),
        excluded=lockfiles if not pin_from_lockfiles else (),
    )
    graph = condense(
        {
            _key(plan.identity.address): [_key(dep.identity.address) for dep in plan.first_party]
            for plan in plans
        }
    )
    found = find_origins(history.commits, index, graph, changed=commit.changed)
    result = {}
    for plan in plans:
        key = _key(plan.identity.address)
        if key in found.dirty:
            result[plan.identity.address] = DistOrigin(
                commit.sha, commit.count, commit.commit_epoch, commit.commit_time, dirty=True
            )
            continue
        position = found.index[key]
        entry = history.commits[position]
        result[plan.identity.address] = DistOrigin(entry.sha, commit.count - position, entry.epoch, entry.time)
    return result


# Bumped whenever the plugin changes the bytes it writes for the same content: part of every
# fingerprint, so a wheel built by an older plugin is never taken for one built now.
WHEEL_LAYOUT = "export-dists wheel layout 1"


def _with_fingerprints(planned: list[PlannedDist], request: ExportRequest) -> list[PlannedDist]:
    """Each dist's content fingerprint: its own content and that of its first-party closure."""
    own: dict[Address, str] = {}
    for p in planned:
        plan = p.plan
        document = {
            "layout": WHEEL_LAYOUT,
            "name": plan.identity.name,
            "address": plan.identity.address.spec,
            "namespace": request.settings.namespace,
            "files": [[f.path, f.wheel_path] for f in plan.files],
            "digest": plan.digest.fingerprint,
            "requires_python": plan.requires_python,
            "first_party": sorted(d.identity.name or "" for d in plan.first_party),
            "third_party": [line.text for line in p.requirements if not line.first_party],
        }
        own[plan.identity.address] = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    # A Merkle hash over the dependency graph (a cycle's members hashed together): linear in its size.
    graph = condense({p.plan.identity.address: [d.identity.address for d in p.plan.first_party] for p in planned})
    closure = graph.fold(own, lambda values: hashlib.sha256("\n".join(sorted(values)).encode()).hexdigest())
    result = []
    for p in planned:
        address = p.plan.identity.address
        fingerprint = hashlib.sha256(f"{own[address]}\n{closure[address]}".encode()).hexdigest()
        result.append(PlannedDist(p.plan, p.requirements, p.version, p.origin, fingerprint))
    return result


# Wheels already built in this process (pantsd keeps it across runs), by everything their bytes
# are made of: a dist whose content and origin did not change is not built again.
_BUILT: OrderedDict[tuple, Wheel] = OrderedDict()
_BUILT_MAX = 50_000


async def _wheels(planned: list[PlannedDist], settings: dict[Address, WheelSettings]) -> list[Wheel]:
    keys = [
        (p.fingerprint, settings[p.plan.identity.address], tuple(line.text for line in p.requirements))
        for p in planned
    ]
    missing = [p for p, key in zip(planned, keys) if key not in _BUILT]
    contents: dict[str, bytes] = {}
    if missing:
        # One read of every file to build, rather than one rule (and engine round trip) per dist.
        files = await Get(Digest, MergeDigests(p.plan.digest for p in missing))
        contents = {entry.path: entry.content for entry in await Get(DigestContents, Digest, files)}
    wheels = []
    for p, key in zip(planned, keys):
        wheel = _BUILT.get(key)
        if wheel is None:
            requires = tuple(line.text for line in p.requirements)
            wheel = wheel_for(p.plan, requires, settings[p.plan.identity.address], contents)
            _BUILT[key] = wheel
            while len(_BUILT) > _BUILT_MAX:
                _BUILT.popitem(last=False)
        else:
            _BUILT.move_to_end(key)
        wheels.append(wheel)
    return wheels


def _report_url_requirements(planned: list[PlannedDist]) -> None:
    dists_by_url_requirement: dict[str, list[str]] = {}
    mapped: dict[str, str] = {}
    for p in planned:
        for line in p.requirements:
            if line.mapped_from:
                mapped[line.mapped_from] = line.text
            elif not line.first_party and url_of(line.text):
                dists_by_url_requirement.setdefault(line.text, []).append(p.plan.identity.name or "")
    report_url_requirements(dists_by_url_requirement, mapped)


@rule(desc="Plan and build an export")
async def build_export(
    request: ExportRequest, build_files: BuildFileOptions, python_setup: PythonSetup, build_root: BuildRoot
) -> Export:
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
    # An environment pins its whole closure and the union of its third party (environments.py).
    plans = flatten_environments(plans)
    _check_collisions(plans)
    _report_shared_files(plans)
    _report_packages_split_across_dists(plans)
    _report_unexportable(plans, request.unexportable)
    report_cycles(dist_cycles(plans), plans)
    await Get(TopLevelCheck, TopLevelCheckRequest(tuple(plans[a] for a in sorted(plans)), request.refuse_top_level))

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

    head = DistOrigin(commit.sha, commit.count, commit.commit_epoch, commit.commit_time, commit.dirty)
    if request.version_scheme == VersionScheme.CONTENT:
        origins = await _content_origins(
            ordered, commit, request.pin_from_lockfiles, build_files, python_setup, build_root
        )
    else:
        origins = {plan.identity.address: head for plan in ordered}
    versions = _versions(request.version_template, origins)
    url_map = UrlRequirementMap.parse(request.url_requirement_map)
    planned = []
    for plan in ordered:
        dist_versions = {a: versions[a] for a in [plan.identity.address, *(d.identity.address for d in plan.first_party)] if a in versions}
        lines = requires_dist(plan, version=version, versions=dist_versions, lockfiles=lockfiles, url_map=url_map)
        if is_environment(plan):
            check_conflicts(plan, lines)
        planned.append(PlannedDist(plan, lines, versions[plan.identity.address], origins[plan.identity.address]))
    _report_url_requirements(planned)
    planned = _with_fingerprints(planned, request)

    content_scheme = request.version_scheme == VersionScheme.CONTENT
    settings = {
        p.plan.identity.address: WheelSettings(
            version=p.version,
            sha=p.origin.sha,
            namespace=request.settings.namespace,
            dirty=p.origin.dirty,
            commit_epoch=p.origin.epoch,
            fingerprint=p.fingerprint if content_scheme else None,
        )
        for p in planned
        if p.origin is not None
    }
    wheels = await _wheels(planned, settings)
    dists = tuple(
        ExportedDist(
            name=p.plan.identity.name or "",
            version=p.version,
            address=p.plan.identity.address.spec,
            wheel=wheel,
            requires_dist=tuple(line.text for line in p.requirements),
            requires_python=p.plan.requires_python,
            origin=p.origin.sha if p.origin else None,
            fingerprint=p.fingerprint,
            dirty=bool(p.origin and p.origin.dirty),
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
        version_scheme=request.version_scheme.value,
    )
    return Export(info, dists, tuple(planned), requested, skipped)


def rules():
    return collect_rules()

"""version_scheme = "content": each dist's origin commit, its version, and its content fingerprint."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Callable, Sequence

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import PythonRequirementsField
from pants.base.build_root import BuildRoot
from pants.engine.addresses import Address
from pants.engine.internals.build_files import BuildFileOptions
from pants.engine.internals.native_engine import FilespecMatcher
from pants.engine.target import Target

import export_dists_core
from export_dists.cycles import condensed_dependencies
from export_dists.dists import DistPlan
from export_dists.engine import all_targets, concurrently, implicitly
from export_dists.export_types import DistOrigin, ExportRequest, PlannedDist
from export_dists.per_plan import PerPlan
from export_dists_core.graphs import Condensed, closure_fingerprints, condense
from export_dists_core.inputs import DistInputs, InputIndex
from export_dists_core.origins import Walk, find_origins, origin_commits
from export_dists.versioning import (
    CommitVersion,
    ExportCommit,
    HistoryRequest,
    first_parent_history,
    render_version,
)


def versions_of(template: str, origins: dict[Address, DistOrigin]) -> dict[Address, str]:
    rendered: dict[DistOrigin, str] = {}
    for origin in origins.values():
        if origin not in rendered:
            rendered[origin] = render_version(template, CommitVersion(origin.sha, origin.count, origin.dirty), warn=False)
    return {address: rendered[origin] for address, origin in origins.items()}


def pants_glob_matcher(includes: Sequence[str], excludes: Sequence[str]) -> Callable[[str], bool]:
    """`sources` globs matched as Pants matches them."""
    matcher = FilespecMatcher(list(includes), list(excludes))
    return lambda path: bool(matcher.matches([path]))


def _key(address: Address) -> str:
    return address.spec


@dataclass(frozen=True)
class _IndexArguments:
    """What an InputIndex is made of: equal arguments, an equal index."""

    inputs: dict[str, DistInputs]
    build_patterns: tuple[str, ...]
    repository_wide: tuple[str, ...]
    repository_wide_directories: tuple[str, ...]
    repository_wide_trees: tuple[str, ...]
    excluded: tuple[str, ...]

    def same_settings(self, other: _IndexArguments) -> bool:
        return dataclasses.replace(self, inputs={}) == dataclasses.replace(other, inputs={})


@dataclass(frozen=True)
class _LastWalk:
    arguments: _IndexArguments
    graph: dict[str, tuple[str, ...]]
    index: InputIndex
    condensed: Condensed[str]
    walk: Walk | None


def _inputs_of(plan: DistPlan) -> DistInputs:
    return DistInputs(
        files=tuple(f.path for f in plan.files),
        includes=plan.includes,
        excludes=plan.excludes,
        directories=plan.directories,
        imports=plan.imports,
    )


# Kept per plan so that an unchanged dist's inputs are the same object as last export's: comparing
# 10,000 of them with the last walk's is then mostly identity checks.
_INPUTS: PerPlan[DistPlan, DistInputs] = PerPlan(_inputs_of)
_DEPENDENCY_KEYS: PerPlan[DistPlan, tuple[str, ...]] = PerPlan(
    lambda plan: tuple(_key(dep.identity.address) for dep in plan.first_party)
)


def _requirement_directories(targets: Sequence[Target]) -> tuple[str, ...]:
    return tuple(sorted({t.address.spec_path for t in targets if t.has_field(PythonRequirementsField)}))


# The directories of the last target set seen: pantsd hands every run the same AllTargets object
# until a BUILD file changes, and looking at every target's fields costs 0.2 s at 10,000 targets.
_LAST_TARGETS: list[tuple[Sequence[Target], tuple[str, ...]]] = []


def _requirement_directories_of(targets: Sequence[Target]) -> tuple[str, ...]:
    if not _LAST_TARGETS or _LAST_TARGETS[0][0] is not targets:
        _LAST_TARGETS[:] = [(targets, _requirement_directories(targets))]
    return _LAST_TARGETS[0][1]


# The newest walk per build root in this process (pantsd keeps it between runs): the next export
# of the same dists reads only the commits above it, instead of the whole history again (one leaf
# commit: one commit). A cache, never a source of truth: find_origins gives what a full walk gives.
_LAST_WALK: dict[str, _LastWalk] = {}


async def content_origins(
    plans: list[DistPlan],
    commit: ExportCommit,
    pin_from_lockfiles: bool,
    build_files: BuildFileOptions,
    python_setup: PythonSetup,
    build_root: BuildRoot,
) -> dict[Address, DistOrigin]:
    """Each dist's origin: one walk of the first-parent history (see origins.py)."""
    history, targets = await concurrently(
        first_parent_history(HistoryRequest(commit.sha), **implicitly()), all_targets()
    )
    inputs = {_key(plan.identity.address): _INPUTS(plan) for plan in plans}
    lockfiles = set(python_setup.resolves.values()) if python_setup.enable_resolves else set()
    # The plugin's own code, and the core it shares with other exporters, shape every wheel when
    # they live in the repository (pants-plugins/, core/).
    own_code = [
        os.path.relpath(os.path.dirname(os.path.abspath(module)), os.path.realpath(build_root.path))
        for module in (__file__, export_dists_core.__file__)
    ]
    arguments = _IndexArguments(
        inputs,
        build_patterns=tuple(build_files.patterns),
        repository_wide=tuple(sorted(lockfiles)) if pin_from_lockfiles else (),
        # Where third-party requirements are defined (BUILD, requirements.txt, pyproject.toml):
        # a removed requirement changes Requires-Dist of dists that no longer list it.
        repository_wide_directories=_requirement_directories_of(targets),
        repository_wide_trees=tuple(tree for tree in own_code if not tree.startswith("..")),
        excluded=tuple(sorted(lockfiles)) if not pin_from_lockfiles else (),
    )
    graph = {_key(plan.identity.address): _DEPENDENCY_KEYS(plan) for plan in plans}
    last = _LAST_WALK.get(build_root.path)
    if last is not None and (last.arguments, last.graph) == (arguments, graph):
        # The same dists with the same inputs as the export before (one leaf commit, say): its
        # index, its graph, and its walk to go on from.
        index, condensed, since = last.index, last.condensed, last.walk
    elif last is not None and last.arguments.same_settings(arguments):
        # Other inputs of some dists (a file added, an import changed): the index made from the
        # last one for those few, and its walk to go on from for every dist whose inputs are the same.
        condensed = last.condensed if last.graph == graph else condense(graph)
        index, since = last.index.with_inputs(arguments.inputs), last.walk
    else:
        index = InputIndex(
            arguments.inputs,
            build_patterns=arguments.build_patterns,
            repository_wide=arguments.repository_wide,
            repository_wide_directories=arguments.repository_wide_directories,
            repository_wide_trees=arguments.repository_wide_trees,
            excluded=arguments.excluded,
            glob_matcher=pants_glob_matcher,
        )
        condensed, since = condense(graph), (last.walk if last is not None else None)
    found = find_origins(history.commits, index, condensed, changed=commit.changed, since=since)
    _LAST_WALK[build_root.path] = _LastWalk(arguments, graph, index, condensed, found.walk)
    # The history starts at the exported commit (its first entry), whose count the commit has.
    origins = origin_commits(found, history.commits, count=commit.count)
    result = {}
    for plan in plans:
        o = origins[_key(plan.identity.address)]
        result[plan.identity.address] = DistOrigin(o.sha, o.count, o.epoch, o.time, dirty=o.dirty)
    return result


# Bumped whenever the plugin changes the bytes it writes for the same content: part of every
# fingerprint, so a wheel built by an older plugin is never taken for one built now.
WHEEL_LAYOUT = "export-dists wheel layout 1"


def _own_fingerprint(plan: DistPlan, third_party: tuple[str, ...], namespace: str) -> str:
    document = {
        "layout": WHEEL_LAYOUT,
        "name": plan.identity.name,
        "address": plan.identity.address.spec,
        "namespace": namespace,
        "files": [[f.path, f.wheel_path] for f in plan.files],
        "digest": plan.digest.fingerprint,
        "requires_python": plan.requires_python,
        "first_party": sorted(d.identity.name or "" for d in plan.first_party),
        "third_party": list(third_party),
        # Only when there are some: the fingerprints (and versions) of untyped dists stay as they were.
        **({"markers": list(plan.markers)} if plan.markers else {}),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


_OWN_FINGERPRINTS: PerPlan[DistPlan, str] = PerPlan(_own_fingerprint)


def with_fingerprints(planned: list[PlannedDist], request: ExportRequest) -> list[PlannedDist]:
    """Each dist's content fingerprint: its own content and that of its first-party closure."""
    own: dict[Address, str] = {
        p.plan.identity.address: _OWN_FINGERPRINTS(
            p.plan, tuple(line.text for line in p.requirements if not line.first_party), request.settings.namespace
        )
        for p in planned
    }
    # A Merkle hash over the dependency graph (a cycle's members hashed together): linear in its size.
    fingerprints = closure_fingerprints(own, condensed_dependencies(p.plan for p in planned))
    result = []
    for p in planned:
        address = p.plan.identity.address
        result.append(PlannedDist(p.plan, p.requirements, p.version, p.origin, fingerprints[address]))
    return result



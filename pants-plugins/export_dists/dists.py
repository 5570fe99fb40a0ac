"""What goes into one dist: a target generator -> its name, files and dependency edges."""
from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePath

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import (
    InterpreterConstraintsField,
    PythonRequirementResolveField,
    PythonRequirementsField,
    PythonSourceField,
    PythonSourcesGeneratingSourcesField,
    PythonTestSourceField,
    PythonTestsGeneratingSourcesField,
    PythonTestUtilsGeneratingSourcesField,
)
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.base.specs import AddressLiteralSpec, RawSpecs
from pants.core.target_types import (
    ResourceSourceField,
    ResourcesGeneratingSourcesField,
)
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.addresses import Address, Addresses
from pants.engine.fs import Digest
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    Dependencies,
    DependenciesRequest,
    ExplicitlyProvidedDependencies,
    SourcesField,
    Target,
    TargetGenerator,
    Targets,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.source.source_root import SourceRootRequest, SourceRoot, SourceRootsRequest, SourceRootsResult
from pants.util.strutil import softwrap

from export_dists.naming import InvalidDistName, dist_name_for
from export_dists.target_types import ExportDistNameField, SkipExportDistField


class DistKind(Enum):
    PYTHON = "python"
    RESOURCES = "resources"


class EdgeKind(Enum):
    INFERRED = "inferred import"
    EXPLICIT = "explicit dependency"
    EXCLUDED = "excluded with !"


@dataclass(frozen=True)
class NamingSettings:
    namespace: str
    strip_source_roots: bool
    include_test_utils: bool


@dataclass(frozen=True)
class DistIdentityRequest:
    address: Address  # a target generator, or a target that generates nothing
    settings: NamingSettings


@dataclass(frozen=True)
class DistIdentity:
    """The dist a target becomes, or why it cannot become one."""

    address: Address
    alias: str
    name: str | None
    kind: DistKind | None
    not_exportable_because: str | None = None

    @property
    def exportable(self) -> bool:
        return self.name is not None


class InvalidExportDistName(Exception):
    pass


def _classify(target: Target, include_test_utils: bool) -> tuple[DistKind | None, str | None]:
    if target.has_field(PythonTestsGeneratingSourcesField) or target.has_field(PythonTestSourceField):
        return None, "tests are never exported; move shared helpers into python_sources or python_test_utils"
    if target.has_field(PythonTestUtilsGeneratingSourcesField):
        if include_test_utils:
            return DistKind.PYTHON, None
        return None, "python_test_utils are exported only with --export-dists-include-test-utils"
    if target.has_field(PythonSourcesGeneratingSourcesField) or target.has_field(PythonSourceField):
        return DistKind.PYTHON, None
    if target.has_field(ResourcesGeneratingSourcesField) or target.has_field(ResourceSourceField):
        return DistKind.RESOURCES, None
    return None, softwrap(
        f"""
        `{target.alias}` targets cannot be dists (they are not importable code or resources);
        use a `resources` target for data read at runtime, or exclude the dependency with `!`
        """
    )


# Targets are looked up one address at a time (WrappedTarget), never as `Get(..., Addresses(...))`:
# in Pants 2.17 every `Collection` has the same hash (`__hash__ = typing.Tuple.__hash__`), so the
# engine compares each new `Addresses` param with every one it interned before. With one lookup per
# dist that is quadratic in the number of dists: 7 s of a 40 s cold export of 1,000 targets.
_ORIGIN = "the export-dists goal"


async def _target(address: Address) -> Target:
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(address, description_of_origin=_ORIGIN))
    return wrapped.target


@rule(desc="Name a dist")
async def dist_identity(request: DistIdentityRequest) -> DistIdentity:
    target = await _target(request.address)
    kind, reason = _classify(target, request.settings.include_test_utils)
    if kind is None:
        return DistIdentity(request.address, target.alias, None, None, reason)
    if target.get(SkipExportDistField).value:
        return DistIdentity(
            request.address,
            target.alias,
            None,
            None,
            "it sets skip_export_dist=True; remove that, or exclude the dependency with `!`",
        )
    explicit = target.get(ExportDistNameField).value
    address = request.address
    try:
        if explicit:
            name = dist_name_for(namespace=explicit, spec_path="", target_name="")
        else:
            source_root: str | None = None
            if request.settings.strip_source_roots:
                root = await Get(SourceRoot, SourceRootRequest(PurePath(address.spec_path or ".")))
                source_root = root.path
            name = dist_name_for(
                namespace=request.settings.namespace,
                spec_path=address.spec_path,
                target_name=address.target_name,
                source_root=source_root,
            )
    except InvalidDistName as e:
        raise InvalidExportDistName(
            softwrap(
                f"""
                The target {address} would be exported as {str(e)!r}, which is not a valid
                project name. Set `export_dist_name="..."` on the target (letters, digits, `.`,
                `_`, `-`), or change [export-dists].namespace.
                """
            )
        )
    return DistIdentity(request.address, target.alias, name, kind)


@dataclass(frozen=True)
class DependencyEdge:
    source: Address  # the file-level target in this dist that has the dependency
    target: Address
    kind: EdgeKind


@dataclass(frozen=True)
class OwnedFile:
    path: str  # path in the build root
    wheel_path: str  # path in the wheel: source root stripped, as Python imports it
    owner: Address


@dataclass(frozen=True)
class ThirdPartyRequirement:
    requirement: str
    address: Address
    resolve: str | None
    edges: tuple[DependencyEdge, ...]


@dataclass(frozen=True)
class FirstPartyDependency:
    identity: DistIdentity
    edges: tuple[DependencyEdge, ...]


@dataclass(frozen=True)
class DistPlanRequest:
    address: Address
    settings: NamingSettings


@dataclass(frozen=True)
class DistPlan:
    """Everything about one dist that does not depend on the commit being exported."""

    identity: DistIdentity
    files: tuple[OwnedFile, ...]
    digest: Digest
    first_party: tuple[FirstPartyDependency, ...]
    third_party: tuple[ThirdPartyRequirement, ...]
    not_exportable: tuple[FirstPartyDependency, ...]
    excluded: tuple[DependencyEdge, ...]
    requires_python: str | None


def requires_python_for(constraints: InterpreterConstraints | None) -> str | None:
    """Requires-Python from interpreter constraints like `CPython>=3.9,<3.12`.

    Several OR-ed constraints cannot be one specifier set; they are left out rather than guessed.
    """
    if not constraints or len(constraints) != 1:
        return None
    specifier = str(next(iter(constraints)).specifier)  # type: ignore[attr-defined]
    return specifier or None


async def _members(target: Target) -> tuple[Target, ...]:
    """The file-level targets a generator owns (or the target itself)."""
    if not isinstance(target, TargetGenerator):
        return (target,)
    address = target.address
    if not address.spec_path or address.parameters:
        # A generator at the build root has no name a spec can give, nor has a parametrized one in
        # every case: rare, so one Addresses param each costs nothing here.
        return tuple(await Get(Targets, Addresses([address]))) or (target,)
    # Expanded as a spec (RawSpecs hashes by value), not as Get(Targets, Addresses([...])): see above.
    spec = AddressLiteralSpec(address.spec_path, address.target_name)
    expanded = await Get(Targets, RawSpecs(address_literals=(spec,), description_of_origin=_ORIGIN))
    return tuple(expanded) or (target,)


@rule(desc="Plan a dist")
async def dist_plan(request: DistPlanRequest, python_setup: PythonSetup) -> DistPlan:
    identity, wrapped = await MultiGet(
        Get(DistIdentity, DistIdentityRequest(request.address, request.settings)),
        Get(WrappedTarget, WrappedTargetRequest(request.address, description_of_origin=_ORIGIN)),
    )
    members = await _members(wrapped.target)
    member_sources = [m[SourcesField] for m in members if m.has_field(SourcesField)]
    source_files = await Get(SourceFiles, SourceFilesRequest(member_sources))
    resolved = await MultiGet(Get(Addresses, DependenciesRequest(m[Dependencies])) for m in members)
    explicit = await MultiGet(
        Get(ExplicitlyProvidedDependencies, DependenciesRequest(m[Dependencies])) for m in members
    )
    roots = await Get(SourceRootsResult, SourceRootsRequest.for_files(source_files.files))
    owner_by_file = {
        m[SourcesField].file_path: m.address  # type: ignore[attr-defined]
        for m in members
        if m.has_field(SourcesField) and hasattr(m[SourcesField], "file_path")
    }
    files = []
    for path in source_files.files:
        root = roots.path_to_root[PurePath(path)].path
        wheel_path = path if root in ("", ".") else os.path.relpath(path, root)
        files.append(OwnedFile(path, wheel_path, owner_by_file.get(path, request.address)))

    edges: list[DependencyEdge] = []
    excluded: list[DependencyEdge] = []
    for member, addresses, provided in zip(members, resolved, explicit):
        for address in addresses:
            kind = (
                EdgeKind.EXPLICIT
                if provided.any_are_covered_by_includes((address,))
                else EdgeKind.INFERRED
            )
            edges.append(DependencyEdge(member.address, address, kind))
        excluded.extend(DependencyEdge(member.address, ignored, EdgeKind.EXCLUDED) for ignored in provided.ignores)

    member_addresses = {m.address for m in members} | {request.address}
    external = [edge for edge in edges if edge.target not in member_addresses]
    wrapped_dependencies = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin=_ORIGIN))
        for a in sorted({edge.target for edge in external})
    )
    dependency_targets = [w.target for w in wrapped_dependencies]
    by_address = {t.address: t for t in dependency_targets}
    # An explicit dependency on a `python_requirements` generator means all of its requirements.
    generators = [
        t for t in dependency_targets if isinstance(t, TargetGenerator) and not t.has_field(PythonRequirementsField)
    ]
    generated = [await _members(t) for t in generators]
    requirement_targets: dict[Address, tuple[Target, ...]] = {
        t.address: requirements
        for t, found in zip(generators, generated)
        if (requirements := tuple(g for g in found if g.has_field(PythonRequirementsField)))
    }
    requirement_targets.update(
        (t.address, (t,)) for t in dependency_targets if t.has_field(PythonRequirementsField)
    )

    third_party: dict[tuple[str, Address], list[DependencyEdge]] = {}
    resolves: dict[Address, str | None] = {}
    first_party_edges: dict[Address, list[DependencyEdge]] = {}
    for edge in external:
        if edge.target in requirement_targets:
            for dep in requirement_targets[edge.target]:
                resolves[dep.address] = (
                    dep[PythonRequirementResolveField].normalized_value(python_setup)
                    if python_setup.enable_resolves
                    else None
                )
                for requirement in dep[PythonRequirementsField].value:
                    third_party.setdefault((str(requirement), dep.address), []).append(edge)
            continue
        generator = edge.target.maybe_convert_to_target_generator()
        if generator == request.address:
            continue  # an edge between two files of this dist
        first_party_edges.setdefault(generator, []).append(edge)

    identities = await MultiGet(
        Get(DistIdentity, DistIdentityRequest(address, request.settings)) for address in first_party_edges
    )
    first_party = []
    not_exportable = []
    for dep_identity in identities:
        entry = FirstPartyDependency(dep_identity, tuple(first_party_edges[dep_identity.address]))
        (first_party if dep_identity.exportable else not_exportable).append(entry)

    constraints = InterpreterConstraints.create_from_targets(
        [m for m in members if m.has_field(InterpreterConstraintsField)], python_setup
    )
    return DistPlan(
        identity=identity,
        files=tuple(sorted(files, key=lambda f: f.wheel_path)),
        digest=source_files.snapshot.digest,
        first_party=tuple(sorted(first_party, key=lambda d: d.identity.address)),
        third_party=tuple(
            ThirdPartyRequirement(req, address, resolves[address], tuple(found))
            for (req, address), found in sorted(third_party.items(), key=lambda kv: (kv[0][0], kv[0][1]))
        ),
        not_exportable=tuple(sorted(not_exportable, key=lambda d: d.identity.address)),
        excluded=tuple(excluded),
        requires_python=requires_python_for(constraints),
    )


def rules():
    return collect_rules()

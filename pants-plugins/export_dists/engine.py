"""How the plugin's rules call the engine on every supported Pants: the one place versions differ.

Rules are written in the style Pants is moving to, calling rules by name:

    identity = await dist_identity(DistIdentityRequest(...), **implicitly())
    wrapped, files = await concurrently(wrapped_target(request), source_files(files_request))

This module chooses, once at import, what those names are:

- Pants 2.23 and later (PANTS_2_23): the engine's own rules and intrinsics by name
  (`resolve_target(request, **implicitly())`, `get_digest_contents(digest)` ...) and Pants'
  `implicitly` / `concurrently`; `by_name` leaves the plugin's rules as they are.
- Pants 2.17 to 2.22: each name is a plain function returning the equivalent `Get`, annotated with
  the bare class `Get` so that the rule parser of these releases follows it and collects the `Get`;
  `concurrently` is `MultiGet` (which takes only `Get`s before 2.19); `by_name` turns a rule of the
  plugin into such a function.

Dropping Pants < 2.23 means deleting the `else` half below, nothing in the rules. Each gate is a
module-level boolean `PANTS_2_NN` ("at least 2.NN") so that a type checker can be told which side
holds (`mypy --always-true PANTS_2_23`, see build-support/pants_api/mypy_per_tag.py).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, TypeVar

from pants.backend.python.dependency_inference.parse_python_dependencies import ParsePythonDependenciesRequest
from pants.backend.python.target_types import PythonSourceField
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.addresses import Addresses
from pants.engine.environment import EnvironmentName
from pants.engine.fs import Digest, DigestContents, MergeDigests, Paths, PathGlobs
from pants.engine.internals.graph import Owners, OwnersRequest
from pants.engine.internals.parametrize import _TargetParametrizations, _TargetParametrizationsRequest
from pants.engine.process import FallibleProcessResult, Process, ProcessResult
from pants.engine.target import (
    AllTargets,
    DependenciesRequest,
    ExplicitlyProvidedDependencies,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.source.source_root import (
    OptionalSourceRoot,
    OptionalSourceRootsResult,
    SourceRootRequest,
    SourceRootsRequest,
)
from pants.version import PANTS_SEMVER, Version

# "At least 2.NN": the engine's rules and intrinsics have their by-name spelling (2.23), and
# `Get`/`MultiGet` are gone and import parsing takes the file's SourceFiles (2.32).
PANTS_2_23 = PANTS_SEMVER >= Version("2.23.0.dev0")
PANTS_2_32 = PANTS_SEMVER >= Version("2.32.0.dev0")

F = TypeVar("F", bound=Callable[..., Any])


class ParsedImports(Protocol):
    """What the plugin reads of a file's parsed dependencies, on every release: the modules."""

    @property
    def imports(self) -> Mapping[str, Any]: ...


if PANTS_2_23:
    from pants.backend.python.dependency_inference.parse_python_dependencies import parse_python_dependencies
    from pants.core.util_rules.source_files import determine_source_files
    from pants.engine.internals.graph import (
        determine_explicitly_provided_dependencies,
        find_all_targets,
        find_owners,
        resolve_dependencies,
        resolve_target,
        resolve_target_parametrizations,
    )
    from pants.engine.intrinsics import (
        execute_process,
        get_digest_contents,
        merge_digests,
        path_globs_to_digest,
        path_globs_to_paths,
    )
    from pants.engine.process import execute_process_or_raise
    from pants.engine.rules import concurrently, implicitly
    from pants.source.source_root import get_optional_source_root, get_optional_source_roots

    def by_name(rule_function: F) -> F:
        """A rule of the plugin, called by name as it is."""
        return rule_function

    async def wrapped_target(request: WrappedTargetRequest) -> WrappedTarget:
        return await resolve_target(request, **implicitly())

    async def target_parametrizations(
        request: _TargetParametrizationsRequest, environment: EnvironmentName
    ) -> _TargetParametrizations:
        return await resolve_target_parametrizations(
            **implicitly({request: _TargetParametrizationsRequest, environment: EnvironmentName})
        )

    async def dependencies(request: DependenciesRequest) -> Addresses:
        return await resolve_dependencies(request, **implicitly())

    async def explicit_dependencies(request: DependenciesRequest) -> ExplicitlyProvidedDependencies:
        return await determine_explicitly_provided_dependencies(**implicitly({request: DependenciesRequest}))

    async def all_targets() -> AllTargets:
        return await find_all_targets(**implicitly())

    async def owners(request: OwnersRequest) -> Owners:
        return await find_owners(request, **implicitly())

    async def source_root(request: SourceRootRequest) -> OptionalSourceRoot:
        return await get_optional_source_root(request, **implicitly())

    async def source_roots(request: SourceRootsRequest) -> OptionalSourceRootsResult:
        return await get_optional_source_roots(request)

    async def source_files(request: SourceFilesRequest) -> SourceFiles:
        return await determine_source_files(request)

    async def merged(request: MergeDigests) -> Digest:
        return await merge_digests(request)

    async def digest_contents(digest: Digest) -> DigestContents:
        return await get_digest_contents(digest)

    async def glob_contents(globs: PathGlobs) -> DigestContents:
        return await get_digest_contents(await path_globs_to_digest(globs))

    async def glob_paths(globs: PathGlobs) -> Paths:
        return await path_globs_to_paths(globs)

    async def run_process(process: Process) -> FallibleProcessResult:
        return await execute_process(process, **implicitly())

    async def run_process_or_raise(process: Process) -> ProcessResult:
        return await execute_process_or_raise(**implicitly({process: Process}))

    if PANTS_2_32:

        async def python_imports(field: PythonSourceField, constraints: InterpreterConstraints) -> ParsedImports:
            # One file per request, as dependency inference asks (`_exec_parse_deps`), so the
            # engine answers from memory; interpreter constraints are no longer part of it.
            source = await determine_source_files(SourceFilesRequest([field]))
            parsed = await parse_python_dependencies(ParsePythonDependenciesRequest(source), **implicitly())
            return next(iter(parsed.path_to_deps.values()))

    else:

        async def python_imports(field: PythonSourceField, constraints: InterpreterConstraints) -> ParsedImports:
            return await parse_python_dependencies(
                ParsePythonDependenciesRequest(field, constraints), **implicitly()
            )

else:
    import inspect
    from typing import get_type_hints

    from pants.backend.python.dependency_inference.parse_python_dependencies import ParsedPythonDependencies
    from pants.engine.rules import Get, MultiGet

    concurrently = MultiGet

    def implicitly(*args: Any) -> dict[str, Any]:
        """Before 2.23 the engine supplies a rule's other parameters to every `Get` by itself."""
        return {}

    def by_name(rule_function: F) -> F:
        """A rule of the plugin as a function returning `Get(its output, its request, request)`.

        The rule stays registered (collect_rules finds its `rule` on the function returned), and
        callers write `await rule_name(request, **implicitly())` as on Pants 2.23+.
        """
        hints = get_type_hints(rule_function)
        request_parameter = next(iter(inspect.signature(rule_function).parameters))
        output_type = hints["return"]
        input_type = hints[request_parameter]

        def call(request: Any, **implicit: Any) -> Get:
            return Get(output_type, input_type, request)

        call.rule = rule_function.rule  # type: ignore[attr-defined]
        call.__name__ = rule_function.__name__
        call.__qualname__ = rule_function.__qualname__
        call.__doc__ = rule_function.__doc__
        return call  # type: ignore[return-value]

    def wrapped_target(request: WrappedTargetRequest) -> Get:
        return Get(WrappedTarget, WrappedTargetRequest, request)

    def target_parametrizations(request: _TargetParametrizationsRequest, environment: EnvironmentName) -> Get:
        return Get(_TargetParametrizations, {request: _TargetParametrizationsRequest, environment: EnvironmentName})

    def dependencies(request: DependenciesRequest) -> Get:
        return Get(Addresses, DependenciesRequest, request)

    def explicit_dependencies(request: DependenciesRequest) -> Get:
        return Get(ExplicitlyProvidedDependencies, DependenciesRequest, request)

    def all_targets() -> Get:
        return Get(AllTargets)

    def owners(request: OwnersRequest) -> Get:
        return Get(Owners, OwnersRequest, request)

    def source_root(request: SourceRootRequest) -> Get:
        return Get(OptionalSourceRoot, SourceRootRequest, request)

    def source_roots(request: SourceRootsRequest) -> Get:
        return Get(OptionalSourceRootsResult, SourceRootsRequest, request)

    def source_files(request: SourceFilesRequest) -> Get:
        return Get(SourceFiles, SourceFilesRequest, request)

    def merged(request: MergeDigests) -> Get:
        return Get(Digest, MergeDigests, request)

    def digest_contents(digest: Digest) -> Get:
        return Get(DigestContents, Digest, digest)

    def glob_contents(globs: PathGlobs) -> Get:
        return Get(DigestContents, PathGlobs, globs)

    def glob_paths(globs: PathGlobs) -> Get:
        return Get(Paths, PathGlobs, globs)

    def run_process(process: Process) -> Get:
        return Get(FallibleProcessResult, Process, process)

    def run_process_or_raise(process: Process) -> Get:
        return Get(ProcessResult, Process, process)

    def python_imports(field: PythonSourceField, constraints: InterpreterConstraints) -> Get:
        return Get(
            ParsedPythonDependencies,
            ParsePythonDependenciesRequest,
            ParsePythonDependenciesRequest(field, constraints),
        )


__all__ = [
    "PANTS_2_23",
    "PANTS_2_32",
    "ParsedImports",
    "all_targets",
    "by_name",
    "concurrently",
    "dependencies",
    "digest_contents",
    "explicit_dependencies",
    "glob_contents",
    "glob_paths",
    "implicitly",
    "merged",
    "owners",
    "python_imports",
    "run_process",
    "run_process_or_raise",
    "source_files",
    "source_root",
    "source_roots",
    "target_parametrizations",
    "wrapped_target",
]

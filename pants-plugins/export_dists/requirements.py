"""Requires-Dist: first-party deps as pinned dists, third-party deps as written or lockfile-pinned."""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from export_dists_core.compat import InvalidRequirement, Requirement, Specifier, canonicalize_name

from pants.backend.python.subsystems.setup import PythonSetup
from pants.engine.addresses import Address
from pants.engine.fs import PathGlobs, GlobMatchErrorBehavior
from pants.engine.rules import collect_rules, rule
from pants.util.frozendict import FrozenDict

from export_dists.dists import DependencyEdge, DistPlan, EdgeKind
from export_dists.engine import by_name, glob_contents
from export_dists.url_requirements import UrlRequirementMap

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequirementLine:
    """One Requires-Dist line and the dependency edges that produced it."""

    text: str
    edges: tuple[DependencyEdge, ...]
    first_party: bool
    # The URL requirement that [export-dists].url_requirement_map replaced with `text`.
    mapped_from: str | None = None


@functools.lru_cache(maxsize=None)
def parse_requirement(requirement: str) -> Requirement:
    """`Requirement(requirement)`, remembered (raises InvalidRequirement, which is not).

    packaging 21.3 (Pants 2.17's) parses with pyparsing, close to a millisecond a string, and each
    commit's export renders the same few requirement strings again for every dist that uses them.
    Callers must not change the object.
    """
    return Requirement(requirement)


def pin_to_version(requirement: str, version: str) -> str:
    """`requests[socks]>=2.28; python_version<"3.12"` -> `requests[socks]==2.31.0; python_version < "3.12"`."""
    parsed = parse_requirement(requirement)
    extras = f"[{','.join(sorted(parsed.extras))}]" if parsed.extras else ""
    marker = f"; {parsed.marker}" if parsed.marker else ""
    return f"{parsed.name}{extras}=={version}{marker}"


def normalize_requirement(requirement: str) -> str:
    """A requirement string as packaging renders it: one spelling for one requirement."""
    return str(parse_requirement(requirement))


def is_pep508_requirement(requirement: str) -> bool:
    """Whether installers that parse metadata strictly (pip >= 24.1, uv) accept the requirement.

    packaging 21.3, which Pants 2.17 ships, also accepts legacy specifiers such as `>=1.0.x`.
    """
    try:
        parsed = parse_requirement(requirement)
    except InvalidRequirement:
        return False
    return all(isinstance(spec, Specifier) for spec in parsed.specifier)


def parse_lockfile_versions(content: bytes) -> dict[str, str]:
    """Project -> version from a Pants/pex lockfile (JSON after a `//` comment header)."""
    text = "\n".join(
        line for line in content.decode().splitlines() if not line.lstrip().startswith("//")
    )
    document = json.loads(text)
    versions: dict[str, str] = {}
    for resolve in document.get("locked_resolves", []):
        for locked in resolve.get("locked_requirements", []):
            versions.setdefault(canonicalize_name(locked["project_name"]), locked["version"])
    return versions


@dataclass(frozen=True)
class LockfileVersionsRequest:
    resolve: str


@dataclass(frozen=True)
class LockfileVersions:
    resolve: str
    path: str | None
    versions: FrozenDict[str, str]


@by_name
@rule(desc="Read a resolve's lockfile versions")
async def lockfile_versions(request: LockfileVersionsRequest, python_setup: PythonSetup) -> LockfileVersions:
    path = python_setup.resolves.get(request.resolve)
    if not path:
        return LockfileVersions(request.resolve, None, FrozenDict())
    contents = await glob_contents(PathGlobs([path], glob_match_error_behavior=GlobMatchErrorBehavior.ignore))
    if not contents:
        return LockfileVersions(request.resolve, None, FrozenDict())
    try:
        versions = parse_lockfile_versions(contents[0].content)
    except (ValueError, KeyError) as e:
        logger.warning(f"Could not read versions from the lockfile {path} of resolve {request.resolve}: {e}")
        versions = {}
    return LockfileVersions(request.resolve, path, FrozenDict(versions))


# Installers and packaging tools a notebook already has: a lockfile pin would downgrade them.
TOOLS = frozenset({"pip", "setuptools", "wheel", "virtualenv"})


def _unimported_tool(requirement: str, edges: Iterable[DependencyEdge]) -> bool:
    """A tool requirement that no file of the dist imports (e.g. reached through a dependency on a
    whole `python_requirements` generator): exported as written, never pinned to the lockfile."""
    return canonicalize_name(parse_requirement(requirement).name) in TOOLS and not any(
        edge.kind == EdgeKind.INFERRED for edge in edges
    )


def requires_dist(
    plan: DistPlan,
    *,
    version: str,
    lockfiles: Mapping[str, LockfileVersions] | None = None,
    versions: Mapping[Address, str] | None = None,
    url_map: UrlRequirementMap | None = None,
    warn: Callable[[str], None] = logger.warning,
) -> tuple[RequirementLine, ...]:
    """The Requires-Dist lines of one dist, deduplicated, in a stable order.

    First-party dependencies come first (sorted by name), pinned `==` to their entry in `versions`
    (else to `version`); third-party ones follow (sorted), as written or pinned to the lockfile
    version when `lockfiles` is given. What the user should fix goes to `warn`.
    """
    first: dict[str, list[DependencyEdge]] = {}
    project_of: dict[str, str] = {}
    for dep in plan.first_party:
        assert dep.identity.name is not None
        if dep.identity.address == plan.identity.address:
            continue
        text = f"{dep.identity.name}=={(versions or {}).get(dep.identity.address, version)}"
        first.setdefault(text, []).extend(dep.edges)
        project_of[text] = canonicalize_name(dep.identity.name)
    third: dict[str, list[DependencyEdge]] = {}
    mapped_from: dict[str, str] = {}
    for req in plan.third_party:
        text = req.requirement
        try:
            text = normalize_requirement(text)
            replacement = url_map.replace(text) if url_map else None
            if replacement:
                mapped_from[replacement] = text
                text = replacement  # exactly as the team mapped it: not pinned again
            elif parse_requirement(text).url:
                pass  # Never a bare `name==version`: the public index would answer for that name.
            elif lockfiles is not None and req.resolve is not None and not _unimported_tool(text, req.edges):
                locked = lockfiles.get(req.resolve)
                pinned = locked.versions.get(canonicalize_name(parse_requirement(text).name)) if locked else None
                if pinned:
                    text = pin_to_version(text, pinned)
                else:
                    warn(
                        f"{req.address}: {req.requirement!r} is not in the lockfile of resolve "
                        f"{req.resolve!r}; it is exported as written. Run `pants generate-lockfiles`."
                    )
        except InvalidRequirement:
            pass  # Pants accepted it; export it exactly as written.
        if not is_pep508_requirement(text):
            warn(
                f"{req.address}: the requirement {req.requirement!r} (a dependency of the dist "
                f"{plan.identity.name}) is not valid PEP 508 / PEP 440; pip >= 24.1 and uv refuse "
                "to install a dist that declares it. Write it with a valid version specifier."
            )
        third.setdefault(text, []).extend(req.edges)
    # By project name, not by the whole line: `a.b==V` sorts after `a.b.c==V` as text ("=" > ".").
    lines = [
        RequirementLine(text, tuple(edges), True)
        for text, edges in sorted(first.items(), key=lambda kv: project_of[kv[0]])
    ]
    lines.extend(
        RequirementLine(text, tuple(edges), False, mapped_from.get(text))
        for text, edges in sorted(third.items(), key=lambda kv: kv[0].lower())
    )
    return tuple(lines)


def resolves_used(plans: Iterable[DistPlan]) -> tuple[str, ...]:
    return tuple(sorted({req.resolve for plan in plans for req in plan.third_party if req.resolve}))


def rules():
    return collect_rules()

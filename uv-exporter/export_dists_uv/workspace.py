"""A uv workspace as export-dists sees it: its members, their build backends and workspace edges."""
from __future__ import annotations

import glob
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from export_dists_core.compat import InvalidRequirement, Requirement, canonicalize_name
from export_dists_core.graphs import condense

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the Pythons before 3.11
    import tomli as tomllib

PYPROJECT = "pyproject.toml"


class WorkspaceError(Exception):
    """Input a user can fix: the message names the file, the cause and the fix."""


@dataclass(frozen=True)
class Member:
    """One package of the workspace: a member, or the root project when it is a package."""

    name: str  # as [project].name writes it
    path: str  # its directory relative to the workspace root, "." for the root project
    backend: str  # [build-system].build-backend
    dynamic_version: bool
    # The workspace members it depends on (canonical names): a [tool.uv.sources] entry with
    # `workspace = true`, in [project].dependencies or [project].optional-dependencies.
    workspace_dependencies: tuple[str, ...]

    @property
    def project(self) -> str:
        return canonicalize_name(self.name)

    @property
    def prefix(self) -> str:
        """Its directory as a path prefix ("" for the root)."""
        return "" if self.path == "." else self.path + "/"


@dataclass(frozen=True)
class Workspace:
    root: Path
    members: tuple[Member, ...]  # sorted by project
    # Members uv does not build (no [build-system], or tool.uv.package = false): paths, with why.
    virtual: tuple[tuple[str, str], ...] = ()

    def member(self, project: str) -> Member:
        return next(m for m in self.members if m.project == project)

    @property
    def projects(self) -> frozenset[str]:
        return frozenset(m.project for m in self.members)


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise WorkspaceError(f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise WorkspaceError(f"{path} is not valid TOML ({e}): fix the file and re-run.") from None


def _table(document: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    value: Any = document
    for key in keys:
        value = value.get(key, {}) if isinstance(value, dict) else {}
    return value if isinstance(value, dict) else {}


def _is_workspace_source(source: Any) -> bool:
    # A source is a table, or a list of tables with markers (uv's "multiple sources").
    sources = source if isinstance(source, list) else [source]
    return any(isinstance(s, dict) and s.get("workspace") is True for s in sources)


# Jinja placeholders in templated requirements (`acme-core=={{ version }}`): any version parses.
_PLACEHOLDER = re.compile(r"\{\{[^}]*\}\}")
# Where dynamic dependencies are declared as templates the exporter can read: uv-dynamic-versioning's
# hatch metadata hook (its `{{ version }}` pins between members).
_DEPENDENCY_HOOKS = (("tool", "hatch", "metadata", "hooks", "uv-dynamic-versioning"),)


def _requirement_names(document: Mapping[str, Any], where: Path) -> set[str]:
    tables = [_table(document, "project")]
    if {"dependencies", "optional-dependencies"} & set(tables[0].get("dynamic") or []):
        tables.extend(_table(document, *hook) for hook in _DEPENDENCY_HOOKS)
    lines: list[str] = []
    for table in tables:
        lines.extend(table.get("dependencies", []) or [])
        for extra in (table.get("optional-dependencies", {}) or {}).values():
            lines.extend(extra or [])
    names: set[str] = set()
    for line in lines:
        try:
            names.add(canonicalize_name(Requirement(_PLACEHOLDER.sub("0", line)).name))
        except (InvalidRequirement, TypeError) as e:
            raise WorkspaceError(f"{where}: {line!r} is not a valid requirement ({e}).") from None
    return names


def read_workspace(root: Path) -> Workspace:
    """The workspace whose root pyproject.toml is at `root`, or WorkspaceError saying why not."""
    root_file = root / PYPROJECT
    if not root_file.is_file():
        raise WorkspaceError(
            f"{root} is not a uv workspace: it has no {PYPROJECT}. Run export-dists-uv in (or pass) the "
            "directory whose pyproject.toml has [tool.uv.workspace]."
        )
    root_document = _read(root_file)
    workspace = _table(root_document, "tool", "uv", "workspace")
    if "workspace" not in _table(root_document, "tool", "uv"):
        raise WorkspaceError(
            f"{root_file} has no [tool.uv.workspace] table, so {root} is not a uv workspace root. "
            "Pass the workspace's root directory (`members = [...]` under [tool.uv.workspace]); for a "
            "Pants repository (pants.toml) use `pants export-dists ::` instead."
        )
    root_sources = _table(root_document, "tool", "uv", "sources")
    # `**` matches directories at any depth, as in uv.
    excluded = {os.path.normpath(p) for g in workspace.get("exclude", []) for p in glob.glob(str(root / g), recursive=True)}
    directories = {"."} if "project" in root_document else set()
    for pattern in workspace.get("members", []):
        matches = sorted(glob.glob(str(root / pattern), recursive=True))
        for match in matches:
            if os.path.normpath(match) in excluded or not os.path.isdir(match):
                continue
            relative = os.path.relpath(match, root).replace(os.sep, "/")
            if relative.startswith("..") or os.path.basename(relative).startswith("."):
                continue
            if not (Path(match) / PYPROJECT).is_file():
                raise WorkspaceError(
                    f"{root_file}: the workspace member {relative!r} (from members = {pattern!r}) has no "
                    f"{PYPROJECT}. Add one, or list the directory under [tool.uv.workspace].exclude."
                )
            directories.add(relative)

    found: dict[str, Member] = {}
    virtual: list[tuple[str, str]] = []
    declared: dict[str, tuple[str, set[str], dict[str, Any]]] = {}
    for directory in sorted(directories):
        where = root_file if directory == "." else root / directory / PYPROJECT
        document = root_document if directory == "." else _read(where)
        project = _table(document, "project")
        if not project:
            if directory != ".":
                raise WorkspaceError(f"{where} has no [project] table: a workspace member needs a name.")
            continue
        name = project.get("name")
        if not isinstance(name, str) or not name:
            raise WorkspaceError(f"{where}: [project] has no name. Add `name = \"...\"`.")
        backend = _table(document, "build-system").get("build-backend")
        package = _table(document, "tool", "uv").get("package")
        if package is False or (package is None and not backend):
            virtual.append((directory, "no [build-system]" if package is None else "tool.uv.package = false"))
            continue
        project_name: str = canonicalize_name(name)
        if project_name in declared:
            raise WorkspaceError(
                f"two workspace members are named {name!r}: {declared[project_name][0]} and {directory}. "
                "Rename one."
            )
        sources = {**root_sources, **_table(document, "tool", "uv", "sources")}
        declared[project_name] = (directory, _requirement_names(document, where), sources)
        found[project_name] = Member(
            name=name,
            path=directory,
            backend=str(backend or "setuptools.build_meta:__legacy__"),
            dynamic_version="version" in (project.get("dynamic") or []),
            workspace_dependencies=(),
        )
    members = []
    for project_name, member in sorted(found.items()):
        _, names, sources = declared[project_name]
        by_project: dict[str, Any] = {canonicalize_name(k): v for k, v in sources.items()}
        edges = tuple(
            sorted(n for n in names if n != project_name and n in found and _is_workspace_source(by_project.get(n)))
        )
        members.append(
            Member(member.name, member.path, member.backend, member.dynamic_version, edges)
        )
    result = Workspace(root, tuple(members), tuple(virtual))
    check_no_cycles(result)
    return result


def check_no_cycles(workspace: Workspace) -> None:
    """Members in a dependency cycle pin each other to versions that name each other: refused."""
    graph = condense({m.project: m.workspace_dependencies for m in workspace.members})
    cycles = graph.cycles()
    if not cycles:
        return
    described = []
    for cycle in cycles:
        edges = []
        for project in cycle:
            member = workspace.member(project)
            target = next(d for d in member.workspace_dependencies if d in cycle)
            edges.append(f"{member.name} ({member.path}/{PYPROJECT}) -> {target}")
        described.append(f"{len(cycle)} members: " + "; ".join(edges))
    raise WorkspaceError(
        "the workspace has a dependency cycle between members, so no member of it can be pinned to a "
        "version of the others: " + " | ".join(described) + ". Break the cycle: move what the members "
        "share into a member of its own that they both depend on."
    )

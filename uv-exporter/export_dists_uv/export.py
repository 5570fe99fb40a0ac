"""One export of a uv workspace: members -> versions -> wheels (built or cached) -> the export directory."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from export_dists_core.compat import Requirement, canonicalize_name
from export_dists_core.layout import (
    ExportedDist,
    ExportInfo,
    WriteResult,
    earlier_dists,
    export_files,
    link_sources,
    write_export,
)
from export_dists_core.naming import normalize
from export_dists_core.versions import DEFAULT_TEMPLATE, explain_version, fill_template, versions_summary
from export_dists_core.wheel import provenance_json

from export_dists_uv.build import WheelCache, build_members
from export_dists_uv.git import Commit, read_commit, read_history, tree_blobs, work_tree_files
from export_dists_uv.stamp import StampedWheel, stamp_wheel
from export_dists_uv.versions import MemberVersion, member_versions
from export_dists_uv.workspace import PYPROJECT, Workspace, WorkspaceError, read_workspace

DEFAULT_NAMESPACE = "workspace"


class DirtyTree(Exception):
    pass


@dataclass(frozen=True)
class ExportOptions:
    root: Path
    output_dir: Path
    cache_dir: Path
    template: str = DEFAULT_TEMPLATE
    namespace: str | None = None  # default: the root project's name, else "workspace"
    allow_dirty: bool = False
    jobs: int = 2


@dataclass(frozen=True)
class ExportedMember:
    planned: MemberVersion
    stamped: StampedWheel
    cached: bool

    def dist(self) -> ExportedDist:
        member = self.planned.member
        return ExportedDist(
            name=member.name,
            version=self.planned.version,
            address=member.path,
            wheel=self.stamped.wheel,
            requires_dist=self.stamped.requires_dist,
            requires_python=self.stamped.requires_python,
            origin=self.planned.origin.sha,
            fingerprint=self.planned.fingerprint,
            dirty=self.planned.origin.dirty,
        )


@dataclass(frozen=True)
class Export:
    workspace: Workspace
    info: ExportInfo
    members: tuple[ExportedMember, ...]

    @property
    def built(self) -> int:
        return sum(1 for m in self.members if not m.cached)


def namespace_of(workspace: Workspace, given: str | None) -> str:
    if given:
        return given
    root = next((m for m in workspace.members if m.path == "."), None)
    return root.name if root is not None else DEFAULT_NAMESPACE


def plan_export(options: ExportOptions, *, explaining: bool = False) -> tuple[Workspace, Commit, dict[str, MemberVersion], str]:
    workspace = read_workspace(options.root)
    if not workspace.members:
        raise WorkspaceError(
            f"the uv workspace at {options.root} has no member that is a package (members with a "
            "[build-system]): nothing to export."
        )
    commit = read_commit(options.root, excluded=(options.output_dir, options.cache_dir))
    if commit.dirty and not (options.allow_dirty or explaining):
        shown = ", ".join(commit.changed[:10]) + (f" and {len(commit.changed) - 10} more" if len(commit.changed) > 10 else "")
        raise DirtyTree(
            f"the work tree at {options.root} has uncommitted changes ({shown}): versions name commits, "
            "so commit them, or pass --allow-dirty to export to <sha>.dirty (the changed members and "
            "their dependents get versions ending in .dirty)."
        )
    namespace = namespace_of(workspace, options.namespace)
    history = read_history(options.root, commit.sha)
    blobs = tree_blobs(options.root, commit.sha)
    planned = member_versions(workspace, commit, history, blobs, template=options.template, namespace=namespace)
    return workspace, commit, planned, namespace


def build_export(options: ExportOptions, *, only: str | None = None) -> Export:
    workspace, commit, planned, namespace = plan_export(options, explaining=only is not None)
    wanted = [planned[only]] if only is not None else [planned[m.project] for m in workspace.members]
    built = build_members(
        options.root, work_tree_files(options.root), wanted, WheelCache(options.cache_dir), jobs=options.jobs
    )
    members = []
    for item in wanted:
        member = item.member
        pins = {dep: planned[dep].version for dep in member.workspace_dependencies}
        raw = built[member.project]
        stamped = stamp_wheel(
            raw.content,
            raw.filename,
            name=member.name,
            version=item.version,
            pins=pins,
            provenance=provenance_json(
                sha=item.origin.sha,
                address=member.path,
                namespace=namespace,
                version=item.version,
                dirty=item.origin.dirty,
                fingerprint=item.fingerprint,
            ),
            timestamp=item.origin.epoch,
        )
        members.append(ExportedMember(item, stamped, raw.cached))
    info = ExportInfo(
        sha=commit.sha,
        version=fill_template(options.template, sha=commit.sha, count=commit.count, dirty=commit.dirty),
        count=commit.count,
        namespace=namespace,
        dirty=commit.dirty,
        branches=commit.branches,
        tags=commit.tags,
        commit_time=commit.time,
        version_scheme="content",
    )
    return Export(workspace, info, tuple(members))


def write(options: ExportOptions, export: Export) -> tuple[WriteResult, int]:
    """The export directory, written atomically; and how many dists an earlier export of the commit added."""
    dists = [m.dist() for m in export.members]
    kept = earlier_dists(options.output_dir / export.info.directory_name, export.info, besides={d.project for d in dists})
    every = (*dists, *kept)
    links = link_sources(options.output_dir, export.info.directory_name, every)
    return write_export(options.output_dir, export.info.directory_name, export_files(export.info, every), links), len(kept)


def summary(export: Export, result: WriteResult, started: float) -> str:
    total = len(export.members)
    versions = versions_summary([m.planned.version for m in export.members], export.info.version)
    state = "wrote" if result.written else "unchanged (already exported)"
    if result.linked:
        state += f" ({result.linked_wheels} unchanged wheels linked from earlier exports)"
    return (
        f"export-dists-uv: {total} dists {versions} (commit {export.info.sha[:12]}"
        f"{', DIRTY' if export.info.dirty else ''}; {export.built} built, {total - export.built} from the cache) "
        f"{state}: {result.path} [{time.monotonic() - started:.1f}s]"
    )


def find_member(workspace: Workspace, wanted: str) -> str:
    """A member by dist name or directory (as --explain takes it) -> its project."""
    project = normalize(wanted)
    path = wanted.rstrip("/") or "."
    for member in workspace.members:
        if member.project == project or member.path == path or f"{member.path}/{PYPROJECT}" == path:
            return member.project
    names = ", ".join(f"{m.name} ({m.path})" for m in workspace.members[:20])
    raise WorkspaceError(f"--explain={wanted!r} is neither the name nor the directory of a workspace member. Members: {names}")


def explain(options: ExportOptions, wanted: str, out: Callable[[str], None]) -> None:
    """What --explain prints: the same facts as the Pants exporter's, for a member."""
    workspace = read_workspace(options.root)
    project = find_member(workspace, wanted)
    export = build_export(options, only=project)
    item = export.members[0]
    planned, member = item.planned, item.planned.member
    origin = planned.origin
    out(f"dist:     {member.name}")
    out(explain_version(planned.version, origin=origin.sha, exported=export.info.sha, dirty=origin.dirty))
    out(f"content:  {planned.fingerprint}")
    out(f"member:   {member.path}  (build backend {member.backend}{', dynamic version' if member.dynamic_version else ''})")
    out(f"python:   {item.stamped.requires_python or '(no Requires-Python)'}")
    nested = [m.path for m in workspace.members if m.prefix and m.prefix != member.prefix and m.prefix.startswith(member.prefix)]
    inputs = f"{member.prefix or './'}**" + (f" except {', '.join(nested)}" if nested else "")
    out(f"inputs:   {inputs}; the root {PYPROJECT} (the workspace and its [tool.uv.sources])")
    out("")
    out(f"files ({len(item.stamped.files)}):")
    for path in item.stamped.files:
        out(f"  {path}")
    out("")
    out(f"Requires-Dist ({len(item.stamped.requires_dist)}):")
    for line in item.stamped.requires_dist:
        pinned = canonicalize_name(Requirement(line).name)
        out(f"  {line}")
        if pinned in member.workspace_dependencies:
            out(f"      workspace member: {member.path}/{PYPROJECT} -> {workspace.member(pinned).path} ([tool.uv.sources] {pinned} = {{ workspace = true }}), pinned to its version")
    if workspace.virtual:
        out("")
        out("members left out (not packages):")
        for path, why in workspace.virtual:
            out(f"  {path}: {why}")

"""Each member's content version: one walk of the first-parent history, as the Pants exporter walks it.

A member's inputs are the files under its directory (not those of members nested in it; for the
root project, every file outside the members' directories), so an added or deleted file counts.
Repository-wide: the root pyproject.toml (members, [tool.uv.sources]) and, when this exporter's code
lives in the repository, that code. A member's version names the newest commit that changed an
input of it or of a workspace member it depends on, through the same template as the Pants exporter.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import export_dists_core
from export_dists_core.graphs import closure_fingerprints, condense
from export_dists_core.history import HistoryCommit
from export_dists_core.inputs import DistInputs, InputIndex
from export_dists_core.origins import OriginCommit, find_origins, origin_commits
from export_dists_core.versions import fill_template

from export_dists_uv.git import Commit
from export_dists_uv.workspace import PYPROJECT, Member, Workspace

# Bumped whenever this exporter changes the bytes it writes for the same content: part of every
# fingerprint, so a wheel stamped by an older exporter is never taken for one stamped now.
STAMP_LAYOUT = "export-dists-uv stamp 1"


@dataclass(frozen=True)
class MemberVersion:
    member: Member
    version: str
    origin: OriginCommit
    fingerprint: str  # its content and its closure's
    own_fingerprint: str  # its own content only: what its build depends on


def _under(path: str, glob: str) -> bool:
    # The only globs here are `<directory>/**` and `**`.
    prefix = glob[: -len("**")]
    return path.startswith(prefix)


def directory_matcher(includes: Sequence[str], excludes: Sequence[str]) -> Callable[[str], bool]:
    return lambda path: any(_under(path, g) for g in includes) and not any(_under(path, g) for g in excludes)


def member_inputs(workspace: Workspace) -> dict[str, DistInputs]:
    prefixes = [m.prefix for m in workspace.members if m.prefix]
    inputs = {}
    for member in workspace.members:
        nested = tuple(f"{p}**" for p in prefixes if p != member.prefix and p.startswith(member.prefix))
        inputs[member.project] = DistInputs(
            files=(), includes=(f"{member.prefix}**",), excludes=nested, directories=(), imports=()
        )
    return inputs


def own_code(root: Path) -> tuple[str, ...]:
    """This exporter's and the core's directories, relative to `root`, when they live in it."""
    trees = []
    for module in (__file__, export_dists_core.__file__):
        tree = os.path.relpath(os.path.dirname(os.path.abspath(module)), os.path.realpath(root))
        if not tree.startswith(".."):
            trees.append(tree.replace(os.sep, "/"))
    return tuple(trees)


def member_versions(
    workspace: Workspace,
    commit: Commit,
    history: Sequence[HistoryCommit],
    blobs: Mapping[str, str],
    *,
    template: str,
    namespace: str,
) -> dict[str, MemberVersion]:
    """Per member (by project): its version, origin and fingerprints."""
    index = InputIndex(
        member_inputs(workspace),
        build_patterns=(),
        glob_matcher=directory_matcher,
        repository_wide=(PYPROJECT,),
        repository_wide_trees=own_code(workspace.root),
    )
    graph = condense({m.project: m.workspace_dependencies for m in workspace.members})
    found = find_origins(history, index, graph, changed=commit.changed)
    origins = origin_commits(found, history, count=commit.count)

    dirty_files = set(commit.changed)
    files_of: dict[str, list[list[str]]] = {m.project: [] for m in workspace.members}
    for path in sorted(set(blobs) | dirty_files):
        for project in index.dists_of(path):
            files_of[project].append([path, _file_digest(workspace.root, path) if path in dirty_files else blobs[path]])
    wide = _file_digest(workspace.root, PYPROJECT) if PYPROJECT in dirty_files else blobs.get(PYPROJECT, "")
    own = {}
    for member in workspace.members:
        document = {
            "layout": STAMP_LAYOUT,
            "name": member.name,
            "path": member.path,
            "namespace": namespace,
            "files": files_of[member.project],
            "workspace": wide,
            "first_party": list(member.workspace_dependencies),
        }
        own[member.project] = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    fingerprints = closure_fingerprints(own, graph)
    result = {}
    for member in workspace.members:
        origin = origins[member.project]
        version = fill_template(template, sha=origin.sha, count=origin.count, dirty=origin.dirty)
        result[member.project] = MemberVersion(member, version, origin, fingerprints[member.project], own[member.project])
    return result


def _file_digest(root: Path, path: str) -> str:
    try:
        return "sha256:" + hashlib.sha256((root / path).read_bytes()).hexdigest()
    except OSError:
        return "missing"

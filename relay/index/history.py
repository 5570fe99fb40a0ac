"""A dist's versions along a ref: the commits where it changed, with their dates and messages."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from cachetools import LRUCache
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from relay.contract import Dist, Export
from relay.git import FULL_SHA, Git, GitError
from relay.index.refs import Refs, View

logger = logging.getLogger("relay.pages")

# Commits whose date and subject are kept (a commit never changes).
CACHED_COMMITS = 16384
# Versions shown on a dist's page.
SHOWN_VERSIONS = 50
# First-parent lines of commits and tags kept (a commit's line never changes).
CACHED_LINES = 64


@dataclass(frozen=True)
class Commit:
    sha: str
    date: str | None  # ISO 8601, the committer date (or the export's commit_time without git)
    subject: str | None  # the first line of its message (None without git)


@dataclass(frozen=True)
class ParsedRequirement:
    text: str
    project: str  # the PEP 503 normalized name
    url: str | None


@functools.lru_cache(maxsize=65536)
def parse_requirement(text: str) -> ParsedRequirement:
    """A Requires-Dist line, parsed once per text (the same lines recur in every export)."""
    try:
        parsed = Requirement(text)
    except InvalidRequirement:
        # The contract validated it; a line that no longer parses names itself.
        return ParsedRequirement(text=text, project=canonicalize_name(text.split(";")[0].strip()), url=None)
    return ParsedRequirement(text=text, project=canonicalize_name(parsed.name), url=parsed.url)


@dataclass(frozen=True)
class RequirementChange:
    """Third-party requirement lines of one project that differ between two versions or exports."""

    project: str
    before: tuple[str, ...]
    after: tuple[str, ...]


def third_party_lines(dists: Iterable[Dist], first_party: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The third-party Requires-Dist lines of some dists, by project (first-party projects left out)."""
    ours = set(first_party)
    lines: dict[str, set[str]] = {}
    for dist in dists:
        for text in dist.requires_dist:
            parsed = parse_requirement(text)
            if parsed.project not in ours:
                lines.setdefault(parsed.project, set()).add(text)
    return {project: tuple(sorted(found)) for project, found in sorted(lines.items())}


def requirement_changes(
    before: Mapping[str, tuple[str, ...]], after: Mapping[str, tuple[str, ...]]
) -> tuple[RequirementChange, ...]:
    """What changed from `before` to `after`, by project (added, removed or changed lines)."""
    changes = []
    for project in sorted(set(before) | set(after)):
        old, new = before.get(project, ()), after.get(project, ())
        if old != new:
            changes.append(RequirementChange(project=project, before=old, after=new))
    return tuple(changes)


def export_changes(older: Export, newer: Export) -> tuple[RequirementChange, ...]:
    """The third-party requirement lines an upgrade from `older` to `newer` changes (e.g. lockfile pins)."""
    first_party = set(older.projects) | set(newer.projects)
    return requirement_changes(
        third_party_lines(older.dists, first_party), third_party_lines(newer.dists, first_party)
    )


@dataclass(frozen=True)
class VersionRow:
    """One version of a dist along a ref, newest first."""

    version: str
    commit: Commit  # where it changed: the commit its version names (format 1: the exported commit)
    exports: int  # how many exports of the ref list this version
    first_export: str  # the oldest of them (a key)
    current: bool  # the version the ref's commit serves
    changes: tuple[RequirementChange, ...]  # third-party lines changed since the previous version
    first_party_moved: int  # first-party pins that moved since the previous version


@dataclass(frozen=True)
class VersionRun:
    """Consecutive exports listing one version of the dist, before commit details are known."""

    version: str
    origin: str
    dist: Dist
    exports: tuple[Export, ...]


def version_runs(project: str, exports: Sequence[Export]) -> list[VersionRun]:
    """Group a ref's exports (newest first) by the dist's version; stops where the dist is absent."""
    runs: list[VersionRun] = []
    for export in exports:
        dist = export.dist(project)
        if dist is None:
            break  # older exports predate the dist (or it was skipped there): its line starts here
        if runs and runs[-1].version == dist.version:
            last = runs[-1]
            runs[-1] = VersionRun(last.version, last.origin, last.dist, last.exports + (export,))
            continue
        if len(runs) == SHOWN_VERSIONS:
            break
        runs.append(VersionRun(dist.version, dist.origin or export.sha, dist, (export,)))
    return runs


def version_rows(project: str, exports: Sequence[Export], commits: Mapping[str, Commit]) -> tuple[VersionRow, ...]:
    """The dist's versions along the exports (newest first), with the commit each names."""
    runs = version_runs(project, exports)
    first_party = {p for x in exports[:1] for p in x.projects}
    rows = []
    for i, run in enumerate(runs):
        previous = runs[i + 1].dist if i + 1 < len(runs) else None
        changes: tuple[RequirementChange, ...] = ()
        moved = 0
        if previous is not None:
            changes = requirement_changes(
                third_party_lines([previous], first_party), third_party_lines([run.dist], first_party)
            )
            old = {r for r in previous.requires_dist if parse_requirement(r).project in first_party}
            moved = len({r for r in run.dist.requires_dist if parse_requirement(r).project in first_party} - old)
        rows.append(
            VersionRow(
                version=run.version,
                commit=commits.get(run.origin) or _commit_from_exports(run.origin, run.exports),
                exports=len(run.exports),
                first_export=run.exports[-1].key,
                current=i == 0,
                changes=changes,
                first_party_moved=moved,
            )
        )
    return tuple(rows)


def _commit_from_exports(sha: str, exports: Sequence[Export]) -> Commit:
    """Without git: the date of the export of that commit, if the store has it."""
    date = next((x.commit_time for x in exports if x.sha == sha), None)
    return Commit(sha=sha, date=date, subject=None)


class Commits:
    """Dates and subjects of commits, read with one git process per page and kept (they never change)."""

    def __init__(self, git: Git | None) -> None:
        self.git = git
        self._known: LRUCache[str, Commit] = LRUCache(maxsize=CACHED_COMMITS)

    async def read(self, shas: Iterable[str]) -> dict[str, Commit]:
        wanted = [s for s in dict.fromkeys(shas) if FULL_SHA.fullmatch(s)]
        found = {s: c for s in wanted if (c := self._known.get(s)) is not None}
        missing = [s for s in wanted if s not in found]
        if missing and self.git is not None:
            try:
                out = await self.git.run(
                    "log", "--no-walk=unsorted", "--ignore-missing", "--format=%H%x00%cI%x00%s", *missing
                )
            except GitError as e:
                logger.warning("reading commit messages: %s", e)
                return found
            for line in out.splitlines():
                sha, date, subject = (line.split("\0") + ["", ""])[:3]
                if sha in missing:
                    commit = Commit(sha=sha, date=date or None, subject=subject)
                    self._known[sha] = commit
                    found[sha] = commit
        return found


class Histories:
    """The exports along a ref's first-parent line, newest first, for a dist's versions.

    A branch's View has them already; a commit's or a tag's come from one `git rev-list` per commit
    (kept: a commit's line never changes), or without a repository from the exports whose manifests
    name one of its branches, up to its count.
    """

    def __init__(self, refs: Refs) -> None:
        self.refs = refs
        self._lines: LRUCache[str, tuple[str, ...]] = LRUCache(maxsize=CACHED_LINES)

    async def exports(self, view: View) -> tuple[Export, ...]:
        if view.kind == "branch":
            return view.exports
        tip = view.tip
        stored = self.refs.store.exports()
        git = self.refs.git
        if git is not None:
            line = self._lines.get(tip.sha)
            if line is None:
                try:
                    line = await git.first_parents(tip.sha)
                except GitError as e:
                    logger.warning("reading the history of %s: %s", tip.sha, e)
                    return view.exports
                self._lines[tip.sha] = line
            older = [stored[sha].export for sha in line[1:] if sha in stored]
        else:
            names = set(tip.branches)
            older = sorted(
                (
                    s.export
                    for s in stored.values()
                    if not s.export.dirty and s.export.sha != tip.sha and names & set(s.export.branches)
                    and s.export.count <= tip.count
                ),
                key=lambda x: (x.count, x.commit_time),
                reverse=True,
            )
        return (tip, *older)

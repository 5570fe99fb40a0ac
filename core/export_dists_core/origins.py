"""Where each dist's content appeared: one walk of the first-parent history -> its origin commit.

A dist's version names the newest first-parent commit at or before the exported one that changed
any input of its first-party closure (version_scheme = "content"). An input is a path whose change
can change the wheel: the files a closure member ships, any path its `sources` globs match (so an
added or deleted file counts), the BUILD files of its directory and every directory above it
(`__defaults__`), the `__init__.py` files above its files (Pants infers dependencies on them), any
file that could provide a module it imports (so a deleted module it imported counts, though the
dependency is gone at HEAD), and repository-wide inputs (Pants configuration, the definitions of
third-party requirements, lockfiles used for pins, the plugin's own code when it lives in the
repository). Counting too much only bumps a version; counting too little would give two different
wheels one version, so every doubt counts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from export_dists_core.graphs import Condensed
from export_dists_core.history import HistoryCommit
from export_dists_core.inputs import InputIndex


@dataclass(frozen=True)
class Walk:
    """Where one walk of a history left each dist, to go on from at a later commit of the same line.

    Positions count from `head` (0) in a history of `length` commits: per dist, the newest commit
    that changed one of its own inputs (the oldest commit when none did), and the newest
    repository-wide change (None when none did).
    """

    head: str
    length: int
    index: InputIndex  # what the positions were found with
    own: Mapping[str, int]
    wide: int | None


@dataclass(frozen=True)
class Origins:
    """Per dist: the index in the history (0 = the exported commit) of the commit its content is from."""

    index: Mapping[str, int]
    dirty: frozenset[str]
    walk: Walk | None = None  # what the next commit's walk can go on from


def _own_changes(
    history: Sequence[HistoryCommit], index: InputIndex, since: Walk | None
) -> tuple[dict[str, int], int | None]:
    """Per dist the position of the newest change of its own inputs, and of the newest
    repository-wide change, reading newest first.

    Below `since`'s head, when it is on this history with its whole history below it (a commit
    names its history for good) and the index has the same settings, what `since` found is taken
    for every dist whose inputs are the same as there, and for repository-wide changes; only the
    other dists (new ones, or with other files, globs or imports) are read on.
    """
    length = len(history)
    top, carried, wide_known = length, set(), False
    if since is not None and 0 <= length - since.length < length and history[length - since.length].sha == since.head:
        if since.index is index or since.index.settings == index.settings:
            top, wide_known = length - since.length, True
            old = since.index.inputs
            carried = {key for key, inputs in index.inputs.items() if key in old and old[key] == inputs}
    own: dict[str, int] = {}
    wide: int | None = None
    seeking_wide = True
    pending = set(index.keys)
    for position, commit in enumerate(history):
        if position == top:
            assert since is not None
            for key in pending & carried:
                own[key] = since.own[key] + top
            pending -= carried
            if seeking_wide and wide_known:
                wide, seeking_wide = (None if since.wide is None else since.wide + top), False
        if not pending and not seeking_wide:
            break
        for path in commit.paths:
            if seeking_wide and index.is_repository_wide(path):
                wide, seeking_wide = position, False
            if pending:
                for key in index.dists_of(path) & pending:
                    own[key] = position
                    pending.discard(key)
    # Inputs no commit changed (history ends before them, a dist with no files): the oldest commit.
    oldest = max(length - 1, 0)
    for key in pending:
        own[key] = oldest
    return own, wide


def find_origins(
    history: Sequence[HistoryCommit],
    index: InputIndex,
    graph: Condensed[str],
    *,
    changed: Sequence[str] = (),
    since: Walk | None = None,
) -> Origins:
    """Walk the history newest first until every dist has met a change of one of its own inputs.

    A dist's origin is the newest commit that changed an input of any dist in its closure, or a
    repository-wide input. Paths in `changed` (uncommitted changes) make the dists they are inputs
    of, and every dist whose closure holds one, dirty. `since`, the walk of an earlier export: when
    its commit is on this history, only the commits above it are read for the dists whose inputs are
    the same (one leaf commit: one commit, whatever the length of the history), the whole history
    only for the others; the result is the same as a full walk's.
    """
    own, wide = _own_changes(history, index, since)
    wide_position = max(len(history) - 1, 0) if wide is None else wide
    origins = graph.fold(own, lambda xs: min(xs, default=wide_position))
    origins = {key: min(position, wide_position) for key, position in origins.items() if key in own}
    walk = Walk(history[0].sha, len(history), index, own, wide) if history else None

    own_dirty: set[str] = set()
    dirty_wide = False
    for path in changed:
        dirty_wide = dirty_wide or index.is_repository_wide(path)
        own_dirty |= index.dists_of(path)
    if dirty_wide:
        dirty = frozenset(index.keys)
    elif own_dirty:
        dirty_of = graph.fold({key: key in own_dirty for key in graph.component}, any)
        dirty = frozenset(key for key in index.keys if dirty_of.get(key, False))
    else:
        dirty = frozenset()  # a clean tree: no fold over the whole graph
    return Origins(origins, dirty, walk)


@dataclass(frozen=True)
class OriginCommit:
    """The commit a dist's version names: the exported one (when dirty), or where its content appeared."""

    sha: str
    count: int  # its position on the first-parent history (`git rev-list --first-parent --count`)
    epoch: int
    time: str
    dirty: bool = False  # its files differ from that commit (uncommitted changes)


def origin_commits(found: Origins, history: Sequence[HistoryCommit], *, count: int) -> dict[str, OriginCommit]:
    """Each dist's origin as a commit; `history` starts at the exported commit, whose count is `count`.

    A dirty dist names the exported commit (its version gets `.dirty`).
    """
    head = history[0]
    result = {}
    for key, position in found.index.items():
        if key in found.dirty:
            result[key] = OriginCommit(head.sha, count, head.epoch, head.time, dirty=True)
        else:
            entry = history[position]
            result[key] = OriginCommit(entry.sha, count - position, entry.epoch, entry.time)
    return result

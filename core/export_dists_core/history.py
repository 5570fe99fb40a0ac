"""The first-parent history as export-dists reads it: `git log` output -> commits with changed paths."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HistoryCommit:
    sha: str
    epoch: int
    time: str  # ISO 8601 committer date
    paths: tuple[str, ...]  # changed against its first parent (both sides of a move)
    parent: str = ""  # its first parent ("" for a root commit)


# What `parse_history` reads: `git log --name-only -z --format=...` with this format.
HISTORY_FORMAT = "--format=%x1e%H%x1f%P%x1f%ct%x1f%cI"


def history_arguments(root: str, revisions: str) -> tuple[str, ...]:
    """The arguments after `git` that read the first-parent history every exporter walks."""
    return (
        "-C",
        root,
        "-c",
        "core.quotePath=false",
        "log",
        "--first-parent",
        # A merge's changes against its first parent: what the merge brought to the branch.
        "--diff-merges=first-parent",
        # A move is a deletion and an addition: both sides are inputs of someone.
        "--no-renames",
        "--name-only",
        # Paths relative to the build root (or workspace root), and only those under it.
        "--relative",
        "-z",
        HISTORY_FORMAT,
        revisions,
        "--",
    )


def parse_history(output: bytes) -> tuple[HistoryCommit, ...]:
    """The output of `git log --name-only -z` with HISTORY_FORMAT: newest first.

    A long history repeats the same paths (a file changed again and again) and names each commit
    twice (its sha, and its child's parent): each is one string object, not one per mention.
    """
    commits = []
    strings: dict[str, str] = {}
    for record in output.decode("utf-8", "surrogateescape").split("\x1e")[1:]:
        header, _, rest = record.partition("\0")
        sha, parents, epoch, time = header.split("\x1f")
        paths = tuple(strings.setdefault(p, p) for p in rest.lstrip("\n").split("\0") if p)
        first = parents.split()[0] if parents.split() else ""
        sha = sha.strip()
        commits.append(HistoryCommit(strings.setdefault(sha, sha), int(epoch), time.strip(), paths, strings.setdefault(first, first)))
    return tuple(commits)

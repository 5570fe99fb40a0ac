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


def parse_history(output: bytes) -> tuple[HistoryCommit, ...]:
    """The output of `git log --name-only -z` with HISTORY_FORMAT: newest first."""
    commits = []
    for record in output.decode("utf-8", "surrogateescape").split("\x1e")[1:]:
        header, _, rest = record.partition("\0")
        sha, parents, epoch, time = header.split("\x1f")
        paths = tuple(p for p in rest.lstrip("\n").split("\0") if p)
        parent = parents.split()[0] if parents.split() else ""
        commits.append(HistoryCommit(sha.strip(), int(epoch), time.strip(), paths, parent))
    return tuple(commits)

"""What the uv exporter reads from git: the commit, its first-parent history, its files and their blobs."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from export_dists_core.history import HistoryCommit, history_arguments, parse_history


class GitError(Exception):
    """git could not answer, or the checkout cannot give versions: the message says how to fix it."""


@dataclass(frozen=True)
class Commit:
    sha: str
    count: int
    epoch: int
    time: str
    branches: tuple[str, ...]
    tags: tuple[str, ...]
    # Uncommitted changes, relative to the workspace root (each file of an untracked directory,
    # both sides of a rename).
    changed: tuple[str, ...]

    @property
    def dirty(self) -> bool:
        return bool(self.changed)


def git(root: Path, *args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(
        ["git", "-C", str(root), "--no-optional-locks", *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
    )
    if result.returncode != 0:
        raise GitError(f"`git {' '.join(args)}` in {root} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def read_commit(root: Path, *, excluded: Sequence[Path] = ()) -> Commit:
    """HEAD of the checkout at `root`; `excluded` (absolute) never counts as an uncommitted change."""
    try:
        sha = git(root, "rev-parse", "--verify", "HEAD").decode().strip()
    except GitError as e:
        raise GitError(
            f"export-dists-uv derives versions from git, and {root} is not a git checkout with a commit "
            f"({e}). Run it in a clone of the repository (`git init && git add -A && git commit` for a new one)."
        ) from None
    if git(root, "rev-parse", "--is-shallow-repository").decode().strip() == "true":
        raise GitError(
            f"{root} is a shallow clone: the first-parent commit count that versions are made of would be "
            "wrong. Run `git fetch --unshallow` (in CI: clone with `fetch-depth: 0`)."
        )
    count = int(git(root, "rev-list", "--first-parent", "--count", sha))
    time_text, epoch = git(root, "show", "-s", "--format=%cI %ct", sha).decode().split()
    branches = tuple(git(root, "for-each-ref", "--points-at", sha, "--format=%(refname:short)", "refs/heads").decode().split())
    tags = tuple(git(root, "for-each-ref", "--points-at", sha, "--format=%(refname:short)", "refs/tags").decode().split())
    top = Path(git(root, "rev-parse", "--show-toplevel").decode().strip()).resolve()
    pathspecs = [":(top,exclude,literal)" + os.path.relpath(p.resolve(), top) for p in excluded if _inside(p, top)]
    status = git(root, "status", "--porcelain", "-z", "--no-renames", "--untracked-files=all", "--", ".", *pathspecs)
    prefix = git(root, "rev-parse", "--show-prefix").decode().strip()
    changed = set()
    for entry in status.decode("utf-8", "surrogateescape").split("\0"):
        path = entry[3:]
        if len(entry) > 3 and path.startswith(prefix):
            changed.add(path[len(prefix):])
    return Commit(sha, count, int(epoch), time_text, branches, tags, tuple(sorted(changed)))


def _inside(path: Path, top: Path) -> bool:
    try:
        path.resolve().relative_to(top)
    except ValueError:
        return False
    return path.resolve() != top


def read_history(root: Path, sha: str) -> tuple[HistoryCommit, ...]:
    """The first-parent history from `sha`, newest first, paths relative to `root`."""
    return parse_history(git(root, *history_arguments(".", sha)))


def tree_blobs(root: Path, sha: str) -> dict[str, str]:
    """Every file of commit `sha` under `root`: path relative to it -> the blob id git gives its bytes."""
    blobs = {}
    for entry in git(root, "ls-tree", "-r", "-z", sha).decode("utf-8", "surrogateescape").split("\0"):
        if entry:
            meta, _, path = entry.partition("\t")
            mode, kind, blob = meta.split()
            if kind == "blob":
                blobs[path] = f"{mode}:{blob}"
    return blobs


def work_tree_files(root: Path) -> tuple[str, ...]:
    """The files of the work tree git would commit (tracked and untracked, not ignored), relative to `root`."""
    listed = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return tuple(sorted({p for p in listed.decode("utf-8", "surrogateescape").split("\0") if p}))

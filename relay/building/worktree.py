"""Git worktrees for builds: add one, move it to a commit with a clean tree, remove it, prune."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from relay.git import Git, GitError

logger = logging.getLogger("relay.worktree")

# What a warm worktree keeps across checkouts: Pants' work directory and its daemon's files.
# Everything else untracked (or ignored) is removed, so each build sees exactly its commit.
KEPT = ("/.pants.d", "/.pids", "/.pants.workdir.file_lock*")


async def add(git: Git, path: Path, sha: str) -> None:
    await git.run("worktree", "add", "--detach", "--force", str(path), sha)


async def checkout(git: Git, path: Path, sha: str) -> None:
    """Move a worktree to `sha`, detached, its files exactly the commit's but for KEPT."""
    await git.run("checkout", "--quiet", "--detach", "--force", sha, cwd=path)
    excludes = [a for pattern in KEPT for a in ("-e", pattern)]
    await git.run("clean", "-ffdxq", *excludes, cwd=path)


async def remove(git: Git, path: Path) -> None:
    try:
        await git.run("worktree", "remove", "--force", "--force", str(path))
    except GitError:
        pass
    shutil.rmtree(path, ignore_errors=True)
    await prune(git)


async def prune(git: Git) -> None:
    try:
        await git.run("worktree", "prune")
    except GitError as e:
        logger.warning("git worktree prune: %s", e)

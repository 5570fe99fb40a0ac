"""The relay's git repository: every git process the relay runs, bounded in number and in time."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

FULL_SHA = re.compile(r"[0-9a-f]{40}")
GIT_TIMEOUT_SECONDS = 120.0
# Git processes at once: requests for unknown names must not fork without limit (each costs a
# process and a read of the object database).
MAX_GIT_PROCESSES = 4


class GitError(Exception):
    pass


class Git:
    """The relay's git repository, driven through the `git` command, at most MAX_GIT_PROCESSES at once."""

    def __init__(self, repo: Path, max_processes: int = MAX_GIT_PROCESSES) -> None:
        self.repo = repo
        self.max_processes = max_processes
        # Made on first use, inside the running loop (Python 3.9 binds asyncio primitives at creation).
        self._slots: asyncio.Semaphore | None = None
        self.processes = 0  # git processes started, for tests and the bench
        self._common_dir: asyncio.Future[Path] | None = None

    async def ref_files(self, names: tuple[str, ...]) -> tuple[Path, ...]:
        """The files a change of these full ref names rewrites: each loose ref and packed-refs (in
        the repository's common git directory, found once)."""
        if self._common_dir is None:
            self._common_dir = asyncio.ensure_future(self._find_common_dir())
        try:
            common = await asyncio.shield(self._common_dir)
        except GitError:
            self._common_dir = None
            raise
        return (*(common / name for name in names), common / "packed-refs")

    async def _find_common_dir(self) -> Path:
        return (self.repo / (await self.run("rev-parse", "--git-common-dir")).strip()).resolve()

    @staticmethod
    def changed_since(files: tuple[Path, ...], since: float) -> bool:
        """Whether any of these files was written at or after `since` (a time.time()): git updates
        a ref by renaming a new file in place, so its modification time is the update's. A few stat
        calls: cheap enough for every request of a branch."""
        for path in files:
            try:
                if path.stat().st_mtime >= since:
                    return True
            except OSError:
                continue
        return False

    async def run(self, *args: str, timeout: float = GIT_TIMEOUT_SECONDS, cwd: Path | None = None) -> str:
        """Run `git -C <repo or cwd> ARGS`; its standard output, or GitError with its standard error."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_processes)
        async with self._slots:
            return await self._run(args, timeout, cwd or self.repo)

    async def _run(self, args: tuple[str, ...], timeout: float, cwd: Path) -> str:
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
        self.processes += 1
        process = await asyncio.create_subprocess_exec(
            "git",
            "-C",
            str(cwd),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as e:
            process.kill()
            await process.wait()
            if isinstance(e, asyncio.CancelledError):
                raise
            raise GitError(f"git {' '.join(args)} timed out after {timeout:.0f} s") from None
        if process.returncode != 0:
            raise GitError(f"git {' '.join(args)} failed: {err.decode(errors='replace').strip()}")
        return out.decode()

    async def commit(self, rev: str) -> str | None:
        """The full sha of a commit-ish, or None if the repository has no such commit."""
        try:
            out = await self.run("rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}")
        except GitError:
            return None
        sha = out.strip()
        return sha if FULL_SHA.fullmatch(sha) else None

    async def refs(self) -> dict[str, str]:
        """Every branch, remote-tracking branch and tag: full ref name -> commit sha (one process)."""
        out = await self.run(
            "for-each-ref", "--format=%(refname) %(objectname) %(*objectname)",
            "refs/heads", "refs/remotes", "refs/tags",
        )
        refs = {}
        for line in out.splitlines():
            name, sha, peeled = (line.split(" ") + ["", ""])[:3]
            # An annotated tag names a tag object; the commit is its peeled object.
            refs[name] = peeled or sha
        return refs

    async def reachable(self, sha: str) -> bool:
        """Whether a branch, remote-tracking branch or tag contains the commit."""
        out = await self.run(
            "for-each-ref", "--count=1", "--contains", sha, "--format=%(refname)",
            "refs/heads", "refs/remotes", "refs/tags",
        )
        return bool(out.strip())

    async def remote(self) -> str | None:
        remotes = (await self.run("remote")).split()
        if "origin" in remotes:
            return "origin"
        return remotes[0] if remotes else None

    async def fetch(self, remote: str) -> None:
        await self.run("fetch", "--prune", "--quiet", remote)

    async def first_parents(self, sha: str) -> tuple[str, ...]:
        return tuple((await self.run("rev-list", "--first-parent", sha)).split())

    async def tree_ids(self, sha: str, paths: tuple[str, ...]) -> str:
        """`git ls-tree` of the given top-level paths at a commit: their object ids, one line each."""
        return await self.run("ls-tree", "--full-tree", sha, "--", *paths)

"""Refs -> commits -> the exports an index lists: full sha, short sha, branch, tag, via git or manifests."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from relay.contract import DIRTY_SUFFIX, Export
from relay.store import Store

if TYPE_CHECKING:
    from relay.materialize import Materializer

logger = logging.getLogger("relay.refs")

FULL_SHA = re.compile(r"[0-9a-f]{40}")
SHORT_SHA = re.compile(r"[0-9a-f]{4,39}")
# What git's check-ref-format allows, narrowed to what is safe in a URL path and as an argument.
_REF_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+/-]*")
GIT_TIMEOUT_SECONDS = 120.0


class RefError(Exception):
    """A ref that names nothing the relay can serve; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GitError(Exception):
    pass


@dataclass(frozen=True)
class View:
    """What a ref shows: the commit it names and the exports an index under it lists, newest first."""

    ref: str
    kind: str  # "sha", "branch" or "tag"
    sha: str
    exports: tuple[Export, ...]

    @property
    def immutable(self) -> bool:
        """A view addressed by commit never changes, so its pages and files may be cached forever."""
        return self.kind == "sha"

    @property
    def tip(self) -> Export:
        return self.exports[0]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.exports)


def check_ref_name(ref: str) -> None:
    valid = (
        _REF_NAME.fullmatch(ref) is not None
        and ".." not in ref
        and "//" not in ref
        and not ref.endswith(("/", ".", ".lock"))
        and "/." not in ref
        and len(ref) <= 255
    )
    if not valid:
        raise RefError(400, f"{ref!r} is not a valid ref: use a sha, a short sha, a branch or a tag name")


class Git:
    """The relay's git repository, driven through the `git` command."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    async def run(self, *args: str, timeout: float = GIT_TIMEOUT_SECONDS) -> str:
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
        process = await asyncio.create_subprocess_exec(
            "git",
            "-C",
            str(self.repo),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
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

    async def remote(self) -> str | None:
        remotes = (await self.run("remote")).split()
        if "origin" in remotes:
            return "origin"
        return remotes[0] if remotes else None

    async def fetch(self, remote: str) -> None:
        await self.run("fetch", "--prune", "--quiet", remote)

    async def first_parents(self, sha: str) -> tuple[str, ...]:
        return tuple((await self.run("rev-list", "--first-parent", sha)).split())


class Refs:
    """Resolves the `<ref>` of a URL into a View; builds a missing commit when pull mode is on."""

    def __init__(
        self,
        store: Store,
        git: Git | None = None,
        materializer: Materializer | None = None,
        refresh_interval: float = 60.0,
    ) -> None:
        self.store = store
        self.git = git
        self.materializer = materializer
        self.refresh_interval = refresh_interval
        # revs -> (expiry, sha): branch tips, tags and short shas looked up in git.
        self._revs: dict[tuple[str, ...], tuple[float, str | None]] = {}
        self._history: dict[str, tuple[str, ...]] = {}
        self._views: dict[tuple[str, str, int], View] = {}
        self._remote: str | None = None

    # Periodic refresh (git mode).

    async def refresh(self) -> None:
        """Fetch from the remote (if any) and forget branch tips, so the next request re-resolves them."""
        if self.git is None:
            return
        try:
            self._remote = await self.git.remote()
            if self._remote is not None:
                await self.git.fetch(self._remote)
        except GitError as e:
            logger.warning("refreshing refs: %s", e)
        self._revs.clear()

    async def refresh_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.refresh_interval)

    # Resolution.

    async def resolve(self, ref: str) -> View:
        check_ref_name(ref)
        exports = self.store.exports()
        if ref in exports:
            return self._single(ref, "sha", exports[ref].export)
        if ref.endswith(DIRTY_SUFFIX):
            raise RefError(404, f"no dirty export {ref!r} in the store")
        if FULL_SHA.fullmatch(ref):
            return self._single(ref, "sha", await self._materialize(ref, ref))
        view = await self._branch(ref)
        if view is None:
            view = await self._tag(ref)
        if view is None and SHORT_SHA.fullmatch(ref):
            view = await self._short_sha(ref)
        if view is None:
            hint = "" if self.git is not None else " (this relay has no --repo, so it knows the refs its exports name)"
            raise RefError(404, f"unknown ref {ref!r}: not a commit, branch or tag of this relay{hint}")
        return view

    def _single(self, ref: str, kind: str, export: Export) -> View:
        return View(ref=ref, kind=kind, sha=export.sha, exports=(export,))

    async def _materialize(self, ref: str, sha: str) -> Export:
        """The export of a commit: from the store, else built now (pull mode), else a 404."""
        stored = await self.store.find(sha)
        if stored is not None:
            return stored.export
        if self.git is None or self.materializer is None:
            raise RefError(
                404,
                f"{ref!r}: commit {sha} has no export in the store; push one with "
                "`pants export-dists`, or run the relay with --repo to build it on request",
            )
        commit = await self.git.commit(sha)
        if commit is None and self._remote is not None:
            await self.refresh()
            commit = await self.git.commit(sha)
        if commit is None:
            raise RefError(404, f"{ref!r}: commit {sha} is not in the relay's repository")
        return await self.materializer.ensure(sha)

    async def _commit(self, *revs: str) -> str | None:
        """The commit of the first rev that exists, remembered for the refresh interval."""
        assert self.git is not None
        now = time.monotonic()
        cached = self._revs.get(revs)
        if cached is not None and now < cached[0]:
            return cached[1]
        sha = None
        for rev in revs:
            sha = await self.git.commit(rev)
            if sha is not None:
                break
        self._revs[revs] = (now + self.refresh_interval, sha)
        return sha

    async def _branch_tip(self, branch: str) -> str | None:
        candidates = [f"refs/heads/{branch}"]
        if self._remote is not None:
            # What the last fetch saw wins over a local branch the relay's clone may have left behind.
            candidates.insert(0, f"refs/remotes/{self._remote}/{branch}")
        return await self._commit(*candidates)

    async def _branch(self, branch: str) -> View | None:
        if self.git is None:
            return self._manifest_view(branch, "branch", lambda e: branch in e.branches)
        tip = await self._branch_tip(branch)
        if tip is None:
            return None
        generation = self.store.generation
        cached = self._views.get(("branch", branch, generation))
        if cached is not None and cached.sha == tip:
            return cached
        if tip not in self.store.exports() and self.materializer is not None:
            await self._materialize(branch, tip)
        history = self._history.get(tip)
        if history is None:
            try:
                history = await self.git.first_parents(tip)
            except GitError as e:
                raise RefError(502, f"branch {branch!r}: {e}") from None
            if len(self._history) >= 16:
                self._history.clear()
            self._history[tip] = history
        exports = self.store.exports()
        listed = tuple(exports[sha].export for sha in history if sha in exports)
        if not listed:
            raise RefError(
                404,
                f"branch {branch!r} (at {tip[:12]}) has no export in the store; push one with "
                "`pants export-dists`, or run the relay with --export-command to build on request",
            )
        view = View(ref=branch, kind="branch", sha=tip, exports=listed)
        self._views = {k: v for k, v in self._views.items() if k[2] == self.store.generation}
        self._views[("branch", branch, self.store.generation)] = view
        return view

    async def _tag(self, tag: str) -> View | None:
        if self.git is None:
            view = self._manifest_view(tag, "tag", lambda e: tag in e.tags)
            return None if view is None else self._single(tag, "tag", view.tip)
        sha = await self._commit(f"refs/tags/{tag}")
        if sha is None:
            return None
        return self._single(tag, "tag", await self._materialize(tag, sha))

    async def _short_sha(self, prefix: str) -> View | None:
        matches = sorted(k for k in self.store.exports() if k.startswith(prefix) and FULL_SHA.fullmatch(k))
        if len(matches) > 1:
            listed = ", ".join(m[:12] for m in matches[:5])
            raise RefError(404, f"short sha {prefix!r} is ambiguous ({listed}); give more digits")
        if len(matches) == 1:
            return self._single(prefix, "sha", self.store.exports()[matches[0]].export)
        if self.git is None:
            return None
        sha = await self._commit(prefix)
        if sha is None:
            return None
        return self._single(prefix, "sha", await self._materialize(prefix, sha))

    def _manifest_view(self, ref: str, kind: str, names: Callable[[Export], bool]) -> View | None:
        """Without a repository: the exports whose manifests named the ref, newest (highest count) first."""
        generation = self.store.generation
        cached = self._views.get((kind, ref, generation))
        if cached is not None:
            return cached
        matching: Sequence[Export] = [
            s.export for s in self.store.exports().values() if not s.export.dirty and names(s.export)
        ]
        if not matching:
            return None
        ordered = tuple(sorted(matching, key=lambda e: (e.count, e.commit_time), reverse=True))
        view = View(ref=ref, kind=kind, sha=ordered[0].sha, exports=ordered)
        self._views = {k: v for k, v in self._views.items() if k[2] == generation}
        self._views[(kind, ref, generation)] = view
        return view

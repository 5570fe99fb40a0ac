"""Refs -> commits -> the exports an index lists: full sha, short sha, branch, tag, via git or manifests."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping, Protocol, Sequence

from cachetools import LRUCache, TLRUCache

from relay.contract import DIRTY_SUFFIX, Export, newest_first
from relay.errors import RelayError
from relay.git import FULL_SHA, GIT_TIMEOUT_SECONDS, Git, GitError  # noqa: F401 (re-exported)
from relay.storage.store import Store, StoredExport
from relay.upkeep import forever

logger = logging.getLogger("relay.refs")

SHORT_SHA = re.compile(r"[0-9a-f]{4,39}")
# What git's check-ref-format allows, narrowed to what is safe in a URL path and as an argument.
_REF_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+/-]*")
# A name git does not know is remembered this long; the ref list is re-read on a miss at most this often.
MISS_SECONDS = 10.0
# How long a branch page waits for its tip's build before it answers from the newest built commit:
# under pip's 15 s read timeout, longer than a one-leaf warm build.
TIP_WAIT_SECONDS = 10.0
# The refs listed on the pages for people are read again when older than this.
LISTING_SECONDS = 10.0
# A branch is resolved from refs read after its ref files were last written (a few stat calls a
# request: a commit made in the relay's repository is what the very next install from its branch
# gets), and at most this old in any case (refs that live in no file, e.g. a reftable repository).
BRANCH_REFS_SECONDS = 1.0
REF_TIME_SLACK = 0.05
# Not looked up yet (None is a commit git does not have).
_UNKNOWN = ""


class RefError(RelayError):
    """A ref that names nothing the relay can serve; `status` is the HTTP status to answer."""


class Builds(Protocol):
    """What a resolver needs of pull mode (relay.building.materialize.Materializer is one): the one owner of
    "is the export in the store, may it be built, build it"."""

    async def export(self, sha: str, in_repo: Callable[[], Awaitable[bool]] | None = None) -> Export:
        """The export of a commit: from the store, else built now (started or joined) and waited for;
        `in_repo` says whether the repository has the commit, asked before a build is started."""

    async def export_within(self, branch: str, sha: str, seconds: float) -> Export | None:
        """The export of a branch's tip if it is in the store or built within `seconds` (one deadline
        shared by all who ask for that tip), else None while it goes on building."""

    def tip(self, branch: str, sha: str) -> None:
        """Build a branch's tip in the background."""

    def building(self, sha: str) -> bool:
        """Whether a build of the commit is queued or running."""


@dataclass(frozen=True)
class RefRow:
    """A branch or tag of the relay's repository and the commit it names, as resolution reads it."""

    kind: str  # "branch" or "tag"
    name: str
    sha: str


@dataclass(frozen=True)
class View:
    """What a ref shows: the commit it names and the exports an index under it lists, newest first."""

    ref: str
    kind: str  # "sha", "branch" or "tag"
    sha: str  # the commit served: for a branch whose tip is still building, its newest built commit
    exports: tuple[Export, ...]
    building: str | None = None  # a newer commit of the ref being built, if any

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


class Refs:
    """Resolves the `<ref>` of a URL into a View; builds a missing commit when pull mode is on.

    With `builds`, a branch page whose tip has no export waits up to `tip_wait` seconds for the tip's
    build (started, or joined), then answers from the newest built commit of the branch while the tip
    goes on building; with `wait_for_tip` it waits for the build however long it takes. The refresh
    loop starts the builds of the `follow`ed branches' new tips.

    It is the one reader of the repository's refs: the pages for people list `listing()`, which
    names each branch's commit by the same rule resolution uses.
    """

    def __init__(
        self,
        store: Store,
        git: Git | None = None,
        builds: Builds | None = None,
        refresh_interval: float = 60.0,
        *,
        follow: Sequence[str] = (),
        wait_for_tip: bool = False,
        tip_wait: float = TIP_WAIT_SECONDS,
    ) -> None:
        self.store = store
        self.git = git
        self.builds = builds
        self.refresh_interval = refresh_interval
        self.follow = tuple(follow)
        self.wait_for_tip = wait_for_tip
        self.tip_wait = tip_wait
        # Every branch, remote-tracking branch and tag (one `git for-each-ref`), and when it was read.
        self._refs: dict[str, str] = {}
        self._refs_read_at = float("-inf")
        self._refs_task: asyncio.Future[None] | None = None
        self._refs_started_at = float("-inf")
        # When the last completed read of the refs started (time.time(), to compare with file times).
        self._refs_read_since = float("-inf")
        self._fetch_task: asyncio.Future[None] | None = None
        self._fetch_started_at = float("-inf")
        # Short shas and full ones -> the commit, or None for one git does not have: a found commit
        # never changes but is asked again after a refresh interval, a miss after MISS_SECONDS (the
        # commit may be pushed soon). Emptied at each refresh. Forgetting one early (a flood of
        # made-up shas) costs one more git process for it (git runs at most MAX_GIT_PROCESSES at once).
        self._revs: TLRUCache[str, str | None] = TLRUCache(
            maxsize=4096, ttu=lambda _rev, sha, now: now + (self.refresh_interval if sha else MISS_SECONDS)
        )
        # A tip's first-parent history; a tip forgotten costs one more `git rev-list`.
        self._history: LRUCache[str, tuple[str, ...]] = LRUCache(maxsize=16)
        self._views: dict[tuple[str, str, int], View] = {}
        # branch -> (its tip, the store's generation, the view built for them): a stale view is built
        # (and logged) once per tip and listing, not once a request; a branch forgotten is built again.
        self._branch_views: LRUCache[str, tuple[str, int, View]] = LRUCache(maxsize=1024)
        self._remote: str | None = None

    # Periodic refresh (git mode).

    async def refresh(self) -> None:
        """Fetch from the remote (if any), re-read the refs, and start builds of followed tips."""
        if self.git is None:
            return
        await self._fetch()
        self._revs.clear()
        await self._read_refs()
        if self.builds is not None:
            for branch in self.follow:
                tip = self._branch_tip(branch)
                if tip is not None and tip not in self.store.exports():
                    self.builds.tip(branch, tip)

    async def refresh_forever(self) -> None:
        """Refresh every `refresh_interval` until cancelled; a refresh that fails is logged, the next goes on."""
        await forever("refreshing refs", self.refresh, self.refresh_interval, logger)

    async def _fetch(self) -> None:
        """One `git fetch` for everyone: a caller joins one that started after it asked, or starts one."""
        assert self.git is not None
        asked = time.monotonic()
        while True:
            task = self._fetch_task
            if task is not None and not task.done():
                started = self._fetch_started_at
                await asyncio.shield(task)
                if started >= asked:
                    return
                continue
            self._fetch_started_at = time.monotonic()
            self._fetch_task = asyncio.ensure_future(self._fetch_once())
            await asyncio.shield(self._fetch_task)
            return

    async def _fetch_once(self) -> None:
        assert self.git is not None
        try:
            self._remote = await self.git.remote()
            if self._remote is not None:
                await self.git.fetch(self._remote)
        except GitError as e:
            logger.warning("refreshing refs: %s", e)

    async def _read_refs(self, fresh: bool = False) -> None:
        """Re-read every ref with one git process; concurrent callers share it. `fresh`: the read
        must start after this call (a read already under way may predate a ref change just seen)."""
        assert self.git is not None
        asked = time.monotonic()
        while True:
            task = self._refs_task
            if task is None or task.done():
                self._refs_started_at = time.monotonic()
                task = self._refs_task = asyncio.ensure_future(self._read_refs_once())
                await asyncio.shield(task)
                return
            started = self._refs_started_at
            await asyncio.shield(task)
            if not fresh or started >= asked:
                return

    async def _read_refs_once(self) -> None:
        assert self.git is not None
        since = time.time()
        try:
            self._refs = await self.git.refs()
        except GitError as e:
            logger.warning("reading refs: %s", e)
        else:
            self._refs_read_since = since
        self._refs_read_at = time.monotonic()

    async def _ref(self, *names: str) -> str | None:
        """The commit of the first of these full ref names that exists; a miss re-reads the refs at
        most every MISS_SECONDS, so unknown names cost no git process each."""
        if self.git is not None and time.monotonic() - self._refs_read_at > MISS_SECONDS:
            if not any(n in self._refs for n in names):
                await self._read_refs()
        return next((self._refs[n] for n in names if n in self._refs), None)

    async def listing(self) -> tuple[RefRow, ...]:
        """Every branch and tag with the commit resolution gives it (a remote-tracking branch wins
        over a local one of the same name); read again when older than LISTING_SECONDS."""
        if self.git is None:
            return ()
        if time.monotonic() - self._refs_read_at > LISTING_SECONDS:
            await self._read_refs()
        branches: dict[str, str] = {}
        tags: list[RefRow] = []
        for name in self._refs:
            if name.startswith("refs/tags/"):
                tags.append(RefRow("tag", name[len("refs/tags/"):], self._refs[name]))
            elif name.startswith("refs/heads/"):
                branches.setdefault(name[len("refs/heads/"):], "")
            elif self._remote is not None and name.startswith(f"refs/remotes/{self._remote}/"):
                branches.setdefault(name[len(f"refs/remotes/{self._remote}/"):], "")
        rows = [RefRow("branch", b, tip) for b in sorted(branches) if b != "HEAD" and (tip := self._branch_tip(b))]
        return (*rows, *sorted(tags, key=lambda r: r.name))

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
        """The export of a commit: from pull mode's one owner of that question, else from the store,
        else a 404."""
        if self.git is not None and self.builds is not None:
            return await self.builds.export(sha, in_repo=lambda: self._in_repo(sha))
        stored = await self.store.find(sha)
        if stored is not None:
            return stored.export
        raise RefError(
            404,
            f"{ref!r}: commit {sha} has no export in the store; push one with "
            "`pants export-dists`, or run the relay with --repo to build it on request",
        )

    async def _in_repo(self, sha: str) -> bool:
        return await self._commit(sha) is not None

    async def _commit(self, rev: str) -> str | None:
        """The commit of a sha or short sha, fetching once if it is missing; misses are remembered."""
        assert self.git is not None
        cached = self._revs.get(rev, _UNKNOWN)
        if cached != _UNKNOWN:
            return cached
        sha = await self.git.commit(rev)
        if sha is None and self._remote is not None and FULL_SHA.fullmatch(rev):
            await self._fetch()
            sha = await self.git.commit(rev)
        self._revs[rev] = sha
        return sha

    def _branch_tip(self, branch: str) -> str | None:
        candidates = [f"refs/heads/{branch}"]
        if self._remote is not None:
            # What the last fetch saw wins over a local branch the relay's clone may have left behind.
            candidates.insert(0, f"refs/remotes/{self._remote}/{branch}")
        return next((self._refs[n] for n in candidates if n in self._refs), None)

    async def _branch(self, branch: str) -> View | None:
        if self.git is None:
            return self._manifest_view(branch, "branch", lambda e: branch in e.branches)
        names = (f"refs/heads/{branch}", *((f"refs/remotes/{self._remote}/{branch}",) if self._remote else ()))
        try:
            # File times are coarse (the kernel's tick): a ref written just after a read started
            # may carry a time a little before it, hence the slack.
            changed = self.git.changed_since(await self.git.ref_files(names), self._refs_read_since - REF_TIME_SLACK)
        except GitError:
            changed = False
        if changed or time.monotonic() - self._refs_read_at > BRANCH_REFS_SECONDS:
            await self._read_refs(fresh=changed)
        if self._branch_tip(branch) is None:
            await self._ref(f"refs/heads/{branch}")
        tip = self._branch_tip(branch)
        if tip is None:
            return None
        history = await self._first_parents(branch, tip)
        exports: Mapping[str, StoredExport] = self.store.exports()
        building = None
        built: Export | None = None
        if tip not in exports and self.builds is not None:
            if self.wait_for_tip or not any(sha in exports for sha in history):
                built = await self._materialize(branch, tip)
            else:
                built = await self.builds.export_within(branch, tip, self.tip_wait)
                if built is None:
                    # Past the bound: the page answers from what is built; the tip follows.
                    building = tip if self.builds.building(tip) else None
            exports = self.store.exports()
            if built is not None and tip not in exports:
                # Published, but the store's listing may lag it (a large manifest is parsed on the
                # store's thread; an object store lists it at its next listing): the tip's own
                # export, as its build returned it, is what the page must show.
                exports = {**exports, tip: StoredExport(export=built, size=0)}
        generation = self.store.generation
        cached = self._branch_views.get(branch)
        if cached is not None and cached[:2] == (tip, generation) and cached[2].building == building:
            return cached[2]
        listed = tuple(exports[sha].export for sha in history if sha in exports)
        if not listed:
            raise RefError(
                404,
                f"branch {branch!r} (at {tip[:12]}) has no export in the store; push one with "
                "`pants export-dists`, or run the relay with --export-command to build on request",
            )
        view = View(ref=branch, kind="branch", sha=listed[0].sha, exports=listed, building=building)
        if view.sha != tip:
            logger.warning(
                "branch %s: serving %s, not its tip %s (%s)", branch, view.sha, tip,
                f"still building after {self.tip_wait:g} s" if building else "its build failed or is not running",
            )
        self._branch_views[branch] = (tip, generation, view)
        return view

    async def _first_parents(self, branch: str, tip: str) -> tuple[str, ...]:
        assert self.git is not None
        history = self._history.get(tip)
        if history is None:
            try:
                history = await self.git.first_parents(tip)
            except GitError as e:
                raise RefError(502, f"branch {branch!r}: {e}") from None
            self._history[tip] = history
        return history

    async def _tag(self, tag: str) -> View | None:
        if self.git is None:
            view = self._manifest_view(tag, "tag", lambda e: tag in e.tags)
            return None if view is None else self._single(tag, "tag", view.tip)
        sha = await self._ref(f"refs/tags/{tag}")
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
        ordered = tuple(newest_first(matching))
        view = View(ref=ref, kind=kind, sha=ordered[0].sha, exports=ordered)
        self._views = {k: v for k, v in self._views.items() if k[2] == generation}
        self._views[(kind, ref, generation)] = view
        return view

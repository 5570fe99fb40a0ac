"""Pull mode: a commit's export built on request (or ahead, for a followed branch) and published to the store."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from cachetools import TTLCache

from relay.building.queue import BuildQueue
from relay.building.builders import (
    COLD_EXPORT_COMMAND,
    WARM_EXPORT_COMMAND,
    Builder,
    BuildError,
    ColdBuilder,
    ExportCommand,
    WarmBuilder,
    WarmLimits,
)
from relay.building.log import BuildLog
from relay.contract import ContractError, Export, written_export_dir
from relay.errors import RelayError
from relay.git import Git, GitError
from relay.building.processes import Records, log_tail_off_loop
from relay.storage.store import Store

logger = logging.getLogger("relay.materialize")

# How long a commit found on no branch or tag is remembered as such.
UNREACHABLE_SECONDS = 10.0
# A branch tip whose build failed is not built again in the background for this long.
FAILED_TIP_SECONDS = 300.0


@dataclass(frozen=True)
class Limits:
    max_jobs: int = 1
    timeout_seconds: float = 1800.0
    # Commits waiting to be built beyond the running ones; more answer 503.
    max_queued: int = 16


def default_work_dir(store_root: Path | str) -> Path:
    """A work directory that is the same on every start for one store, so a restart finds its leftovers."""
    key = hashlib.sha256(str(store_root).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"relay-work-{key}"


OWNER_LOCK = ".relay-owner.lock"
# Relays of one store on one host (replicas) that each get a default work directory of their own.
MAX_DEFAULT_WORK_DIRS = 64


class WorkDirInUse(Exception):
    """The work directory is owned by another relay that is running."""


@dataclass(frozen=True)
class WorkDirClaim:
    """A work directory this relay owns until it exits: an exclusive `flock` on its owner file.

    The lock's descriptor is never inherited by builds (Python's descriptors are not inheritable),
    so a Pants daemon that outlives the relay does not keep it; forked `--workers` share it.
    """

    path: Path
    fd: int


def claim_work_dir(requested: Path | None, store_key: Path | str) -> WorkDirClaim:
    """The work directory for this relay: `requested` (--work-dir), or by default the store's
    `relay-work-<hash>`, else `-2`, `-3`, ... while other relays of the same store on this host
    (replicas) own the first ones. One owner at a time: two relays sharing one would stop each
    other's warm Pants daemons and clean up each other's builds. A relay started after one died
    takes its free directory back and cleans up what it left."""
    base = default_work_dir(store_key)
    candidates = [requested] if requested is not None else [
        base, *(base.with_name(f"{base.name}-{n}") for n in range(2, MAX_DEFAULT_WORK_DIRS + 1))
    ]
    holders = []
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path / OWNER_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise WorkDirInUse(f"--work-dir {path}: {e.strerror}; give a directory this user can write") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holders.append(f"{path} (relay pid {os.pread(fd, 32, 0).decode(errors='replace').strip() or '?'})")
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return WorkDirClaim(path.resolve(), fd)
    if requested is not None:
        raise WorkDirInUse(
            f"--work-dir {requested} is in use by another relay: {holders[0]}. Give each relay on this "
            "host its own --work-dir (or leave it out: each then gets a directory of its own)"
        )
    raise WorkDirInUse(
        f"{len(holders)} relays of this store already run on this host, each owning a work directory "
        f"({holders[0]}, ...): give this one --work-dir"
    )


class Materializer:
    """Builds exports: one job per commit (shared by all who ask), queued, at most `max_jobs` at once.

    It is what `relay.index.refs.Refs` is given as its `builds`: `export(sha)` waits for a commit's export,
    `tip(branch, sha)` builds a branch's new tip in the background.
    """

    def __init__(
        self,
        git: Git,
        store: Store,
        command: ExportCommand | None = None,
        limits: Limits = Limits(),
        work_dir: Path | None = None,
        *,
        warm: WarmLimits | None = None,
        build_unreachable: bool = False,
    ) -> None:
        self.git = git
        self.store = store
        self.limits = limits
        self.work_dir = (work_dir or default_work_dir(store.identity)).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.records = Records(self.work_dir)
        self.build_unreachable = build_unreachable
        self.builders: list[Builder]
        if warm is not None:
            command = command or ExportCommand(WARM_EXPORT_COMMAND)
            self.builders = [
                WarmBuilder(git, command, limits.timeout_seconds, self.work_dir / f"warm-{n}", self.records, warm)
                for n in range(limits.max_jobs)
            ]
        else:
            command = command or ExportCommand(COLD_EXPORT_COMMAND)
            self.builders = [
                ColdBuilder(git, command, limits.timeout_seconds, self.work_dir, self.records)
                for _ in range(limits.max_jobs)
            ]
        self.command = command
        self.queue: BuildQueue[Export] = BuildQueue(self._build, limits.max_jobs, limits.max_queued)
        self._idle: list[Builder] = list(self.builders)
        # Commits found on no branch or tag. One forgotten early (a flood of such shas) costs one more
        # `git branch --contains`, bounded like every git process.
        self._unreachable: TTLCache[str, bool] = TTLCache(maxsize=1024, ttl=UNREACHABLE_SECONDS)
        # Tips whose build failed, not built again in the background for a while. One forgotten early
        # (more than 1,024 failed builds within FAILED_TIP_SECONDS) is built again at its next request.
        self._failed: TTLCache[str, bool] = TTLCache(maxsize=1024, ttl=FAILED_TIP_SECONDS)
        self._deadlines: dict[str, float] = {}  # tip sha -> until when branch pages wait for its build
        self.runs = 0
        # Outcomes for /metrics and the page for people; queued and running builds are the queue's.
        self.log = BuildLog(jobs=self.queue.jobs)

    # What Refs asks for: the one place that decides "is it in the store, may it be built, build it".

    async def export(self, sha: str, in_repo: Callable[[], Awaitable[bool]] | None = None) -> Export:
        """The export of commit `sha`: from the store, else built now (started or joined) and waited for.

        `in_repo` answers whether the repository has the commit (the resolver's question, which may
        fetch); it is asked only when the store lacks the export and no build of it runs.
        """
        stored = await self.store.find(sha)
        if stored is not None:
            return stored.export
        await self._check_may_build(sha, in_repo)
        return await self.queue.wait(sha)

    async def export_within(self, branch: str, sha: str, seconds: float) -> Export | None:
        """The export of `branch`'s tip `sha` if it is in the store or built within `seconds`, else None
        (the build goes on in the background as the branch's tip).

        Everyone asking for one tip shares one deadline, set by the first to ask: a client that makes
        several requests (pip reads a page per project) waits for the build once, not once a page.
        A tip whose build failed lately is not waited for (nor rebuilt) until FAILED_TIP_SECONDS pass.
        """
        stored = await self.store.find(sha)
        if stored is not None:
            return stored.export
        if self._failed_lately(sha):
            return None
        # A branch's tip may be built by definition: no reachability check.
        try:
            self.queue.tip(branch, sha)
        except RelayError as e:  # a full queue: serve what is built rather than fail the page
            logger.warning("not building %s, the tip of %s: %s", sha, branch, e.message)
            return None
        now = time.monotonic()
        deadline = self._deadlines.setdefault(sha, now + seconds)
        if len(self._deadlines) > 1024:
            self._deadlines = {k: v for k, v in self._deadlines.items() if self.queue.has(k) or k == sha}
        if deadline <= now:
            return None
        try:
            return await asyncio.wait_for(self.queue.wait(sha), deadline - now)
        except asyncio.TimeoutError:
            return None
        except RelayError as e:
            # A branch whose tip does not build keeps serving its newest built commit.
            logger.warning("serving an older commit of %s: the build of its tip %s failed: %s", branch, sha, e.message.splitlines()[0])
            return None

    def tip(self, branch: str, sha: str) -> None:
        """Build a branch's new tip in the background (it replaces an older tip still queued)."""
        if sha in self.store.exports() or self._failed_lately(sha):
            return  # a page request must not rebuild a failing tip each time; a sha request still does
        try:
            self.queue.tip(branch, sha)
        except RelayError as e:
            logger.warning("not building %s, the tip of %s: %s", sha, branch, e.message)

    def building(self, sha: str) -> bool:
        return self.queue.has(sha)

    def unavailable(self) -> str | None:
        """Why this relay cannot build now (None: it can): its repository or work directory is gone."""
        repo = self.git.repo
        if not any((repo / name).exists() for name in ("HEAD", ".git")):
            return f"the repository {repo} is missing or no git repository"
        if not os.access(self.work_dir, os.W_OK | os.X_OK):
            return f"the work directory {self.work_dir} is missing or not writable"
        return None

    def builder_status(self) -> list[dict[str, object]]:
        """Per builder: its kind and, for a warm one, builds, restarts, daemons replaced, memory."""
        return [builder.status() for builder in self.builders]

    def status(self) -> list[dict[str, object]]:
        now = time.monotonic()
        return [
            {
                "sha": job.sha,
                "state": "running" if job.running else "queued",
                "age_s": round(now - job.queued_at, 1),
                "waiting_clients": job.waiters,
                "tip_of": sorted(job.tips),
            }
            for job in self.queue.jobs()
        ]

    # Life cycle.

    def clean_up(self) -> None:
        """At start-up, before serving: stop and remove what a relay that died (kill -9) left behind."""
        for record in self.records.clean_up_after_dead_relays():
            logger.warning("cleaned up after a build of a relay that died (pid %d)", record.relay_pid)
        for builder in self.builders:
            builder.clean_up()
        subprocess.run(["git", "-C", str(self.git.repo), "worktree", "prune"], capture_output=True, check=False)

    async def close(self) -> None:
        """Cancel builds (their processes are killed) and stop the builders' daemons."""
        await self.queue.close()
        for builder in self.builders:
            await builder.close()

    # Building.

    def _failed_lately(self, sha: str) -> bool:
        return sha in self._failed

    async def _check_may_build(self, sha: str, in_repo: Callable[[], Awaitable[bool]] | None) -> None:
        """Raise a 404 unless `sha` may be built: a build of it runs, or it is a commit of the
        repository on a branch or tag (any commit with `build_unreachable`)."""
        if self.queue.has(sha):
            return
        if in_repo is not None and not await in_repo():
            raise RelayError(404, f"commit {sha} is not in the relay's repository")
        if not await self._may_build(sha):
            raise RelayError(
                404,
                f"commit {sha} is on no branch or tag of the relay's repository, so it is not built "
                "(start the relay with --build-unreachable to build any commit)",
            )

    async def _may_build(self, sha: str) -> bool:
        if self.build_unreachable:
            return True
        if sha in self._unreachable:
            return False
        try:
            reachable = await self.git.reachable(sha)
        except GitError as e:
            logger.warning("cannot tell whether %s is on a branch: %s", sha, e)
            return False
        if not reachable:
            self._unreachable[sha] = True
        return reachable

    async def _build(self, sha: str) -> Export:
        with self.store.pin(sha):
            # Other worker processes of this relay may be asked for the same commit: one builds.
            # Other replicas on one bucket too: the store's build claim lets one build while the
            # others wait for its export.
            async with self.store.build_claim(sha) as appeared:
                if appeared is not None:  # pushed, or built elsewhere, while this job waited
                    return appeared.export
                builder = self._idle.pop()
                try:
                    return await self._build_with(builder, sha)
                finally:
                    self._idle.append(builder)

    async def _build_with(self, builder: Builder, sha: str) -> Export:
        started = time.monotonic()
        # The store owns the staging directory and removes it, whatever the build left there.
        with self.store.staging() as staging:
            logs = self.work_dir / "logs"
            logs.mkdir(exist_ok=True)
            log_path = logs / f"{sha}.log"
            self.runs += 1
            logger.info("building %s (%s builder, log %s)", sha, builder.kind, log_path)
            try:
                await builder.build(sha, staging, log_path)
                built = time.monotonic()
                output = written_export_dir(staging, sha)
                try:
                    stored = await self.store.publish(output)
                except ContractError as e:
                    raise BuildError(
                        502, f"the export command for {sha} wrote no valid export: {e}\n" + await log_tail_off_loop(log_path)
                    ) from None
                if stored.export.sha != sha or stored.export.dirty:
                    raise BuildError(502, f"the export command for {sha} wrote commit {stored.export.key}")
                log_path.unlink(missing_ok=True)  # a failed build's log stays, for whoever looks into it
                self.log.finish(sha, None, seconds=time.monotonic() - started)
                logger.info(
                    "materialized %s in %.1f s (build %.1f s, publish %.1f s, %s builder)",
                    sha, time.monotonic() - started, built - started, time.monotonic() - built, builder.kind,
                )
                return stored.export
            except BuildError as e:
                logger.error("materializing %s: %s", sha, e.message)
                self.log.finish(sha, e.message, seconds=time.monotonic() - started)
                self._failed[sha] = True
                raise
            finally:
                self._deadlines.pop(sha, None)

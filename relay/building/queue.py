"""The pull-mode build queue: one job per commit, bounded, coalescing a branch's tips, dropping what
nobody wants any more, a bounded number running at once."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Generic, TypeVar

from relay.errors import RelayError

logger = logging.getLogger("relay.build_queue")

T = TypeVar("T")


class QueueFull(RelayError):
    pass


class Dropped(RelayError):
    """A queued build nobody wants any more (its branch moved on, its clients left)."""


@dataclass
class Job(Generic[T]):
    sha: str
    future: asyncio.Future[T]
    queued_at: float
    started_at: float | None = None
    waiters: int = 0
    # Branches whose current tip this commit is: a job they asked for stays while it is their tip.
    tips: set[str] = field(default_factory=set)

    @property
    def running(self) -> bool:
        return self.started_at is not None


class BuildQueue(Generic[T]):
    """Runs `build(sha)` for requested commits, at most `max_running` at once.

    - A commit has one job however often it is asked for; waiters share its result.
    - A branch's tip replaces its older tip in the queue unless a client waits for that one.
    - A queued job that no client waits for and that is no branch's tip is dropped.
    - At most `max_queued` jobs wait; beyond that a new commit is refused (QueueFull: 503).
    - Jobs with waiting clients run before background ones (branch tips built ahead of demand).
    """

    def __init__(self, build: Callable[[str], Awaitable[T]], max_running: int = 1, max_queued: int = 16) -> None:
        self.build = build
        self.max_running = max_running
        self.max_queued = max_queued
        self._jobs: dict[str, Job[T]] = {}
        self._tips: dict[str, str] = {}  # branch -> the sha of its newest requested tip
        self._tasks: set[asyncio.Task[None]] = set()
        self._durations: list[float] = []

    # Asking for builds.

    async def wait(self, sha: str) -> T:
        """The result of building `sha` (queued now if needed); leaving the wait may drop the job."""
        job = self._submit(sha)
        job.waiters += 1
        try:
            return await asyncio.shield(job.future)
        finally:
            job.waiters -= 1
            self._drop_if_unwanted(job)

    def tip(self, branch: str, sha: str) -> None:
        """`sha` is the newest tip of `branch`: build it in the background, replacing an older tip."""
        job = self._submit(sha)  # first: a full queue changes nothing
        job.tips.add(branch)
        old = self._tips.get(branch)
        self._tips[branch] = sha
        if old is not None and old != sha and old in self._jobs:
            older = self._jobs[old]
            older.tips.discard(branch)
            self._drop_if_unwanted(older)

    # State.

    def has(self, sha: str) -> bool:
        return sha in self._jobs

    def jobs(self) -> list[Job[T]]:
        return sorted(self._jobs.values(), key=lambda j: j.queued_at)

    @property
    def queued(self) -> int:
        return sum(1 for j in self._jobs.values() if not j.running)

    @property
    def running(self) -> int:
        return sum(1 for j in self._jobs.values() if j.running)

    def retry_after(self) -> int:
        """Seconds a refused client should wait: about one build."""
        recent = self._durations[-5:]
        return max(5, round(sum(recent) / len(recent))) if recent else 30

    async def close(self) -> None:
        for job in list(self._jobs.values()):
            if not job.future.done():
                job.future.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Inside.

    def _submit(self, sha: str) -> Job[T]:
        job = self._jobs.get(sha)
        if job is not None:
            return job
        if self.queued >= self.max_queued:
            raise QueueFull(
                503,
                f"the build queue is full ({self.queued} commits wait to be built); retry later, or ask "
                "for a commit that is already built (a branch page serves its last built commit)",
                headers={"Retry-After": str(self.retry_after())},
            )
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        # Background jobs may fail with nobody awaiting them: that is logged, not an asyncio warning.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        job = Job(sha=sha, future=future, queued_at=time.monotonic())
        self._jobs[sha] = job
        self._pump()
        return job

    def _drop_if_unwanted(self, job: Job[T]) -> None:
        if job.running or job.waiters > 0 or job.tips or self._jobs.get(job.sha) is not job:
            return
        del self._jobs[job.sha]
        if not job.future.done():
            job.future.set_exception(Dropped(503, f"the build of {job.sha} was dropped: nobody waits for it"))
        logger.info("dropped the queued build of %s: no client waits for it and it is no branch's tip", job.sha)

    def _pump(self) -> None:
        while self.running < self.max_running:
            waiting = [j for j in self._jobs.values() if not j.running]
            if not waiting:
                return
            # Clients first (waiting now), then branch tips, oldest first.
            job = min(waiting, key=lambda j: (j.waiters == 0, j.queued_at))
            job.started_at = time.monotonic()
            task = asyncio.ensure_future(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job[T]) -> None:
        try:
            result = await self.build(job.sha)
        except asyncio.CancelledError:
            if not job.future.done():
                job.future.cancel()
            raise
        except Exception as e:  # noqa: BLE001 - the job's waiters get the error
            if not job.future.done():
                job.future.set_exception(e)
        else:
            if not job.future.done():
                job.future.set_result(result)
        finally:
            assert job.started_at is not None
            self._durations = self._durations[-9:] + [time.monotonic() - job.started_at]
            if self._jobs.get(job.sha) is job:
                del self._jobs[job.sha]
            for branch in job.tips:
                if self._tips.get(branch) == job.sha:
                    del self._tips[branch]
            self._pump()

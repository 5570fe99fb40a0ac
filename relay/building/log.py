"""What pull mode is building and has built: queued and running builds, outcomes, recent failures."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Iterable, Optional

from relay.building.queue import Job

# Failures kept for the page for people (each with the end of its log).
KEEP_FAILURES = 20


@dataclass(frozen=True)
class Failure:
    sha: str
    finished: float  # wall-clock time
    seconds: float
    message: str  # what the 502/504 said: the command, the exit status, the last log lines


class BuildLog:
    """Written by the Materializer as builds move; read by /metrics and the page for people.

    With `jobs` (the build queue's), queued and running builds are read from the queue, which
    coalesces and drops jobs on its own; without it, from queue()/start() calls. Plain counters and
    dicts, no locks: everything runs on the event loop.
    """

    def __init__(self, jobs: Optional[Callable[[], Iterable[Job[Any]]]] = None) -> None:
        self._jobs = jobs
        self._queued: dict[str, float] = {}  # sha -> wall-clock time it was asked for
        self._running: dict[str, float] = {}  # sha -> wall-clock time its build started
        self.failures: Deque[Failure] = collections.deque(maxlen=KEEP_FAILURES)
        self.succeeded = 0
        self.failed = 0
        self.seconds = 0.0  # total time spent building, finished builds only

    @property
    def queued(self) -> dict[str, float]:
        """sha -> wall-clock time it was asked for, of builds waiting for a builder."""
        return self._from_jobs(running=False) if self._jobs is not None else self._queued

    @property
    def running(self) -> dict[str, float]:
        """sha -> wall-clock time its build started."""
        return self._from_jobs(running=True) if self._jobs is not None else self._running

    def _from_jobs(self, running: bool) -> dict[str, float]:
        assert self._jobs is not None
        to_wall = time.time() - time.monotonic()  # the queue keeps monotonic times
        return {
            job.sha: to_wall + (job.started_at if job.started_at is not None else job.queued_at)
            for job in self._jobs()
            if job.running == running
        }

    def queue(self, sha: str) -> None:
        self._queued.setdefault(sha, time.time())

    def start(self, sha: str) -> None:
        self._queued.pop(sha, None)
        self._running[sha] = time.time()

    def drop(self, sha: str) -> None:
        """A build cancelled (the relay stops): neither a success nor a failure."""
        self._queued.pop(sha, None)
        self._running.pop(sha, None)

    def finish(self, sha: str, failure: str | None, seconds: float | None = None) -> None:
        """A build that ended (`failure`: why it failed, or None); a build that never ran just leaves.

        `seconds` is how long it ran, for a log that reads its builds from the queue.
        """
        self._queued.pop(sha, None)
        started = self._running.pop(sha, None)
        now = time.time()
        if seconds is None:
            if started is None:
                return
            seconds = now - started
        seconds = max(0.0, seconds)
        self.seconds += seconds
        if failure is None:
            self.succeeded += 1
        else:
            self.failed += 1
            self.failures.appendleft(Failure(sha=sha, finished=now, seconds=seconds, message=failure))

"""What pull mode is building and has built: queued and running builds, outcomes, recent failures."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Iterable

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
    """Written by the Materializer as builds end; read by /metrics and the page for people.

    Queued and running builds are read from the build queue's jobs (`jobs`), which coalesces and
    drops jobs on its own. Plain counters and dicts, no locks: everything runs on the event loop.
    """

    def __init__(self, jobs: Callable[[], Iterable[Job[Any]]]) -> None:
        self._jobs = jobs
        self.failures: Deque[Failure] = collections.deque(maxlen=KEEP_FAILURES)
        self.succeeded = 0
        self.failed = 0
        self.seconds = 0.0  # total time spent building, finished builds only

    @property
    def queued(self) -> dict[str, float]:
        """sha -> wall-clock time it was asked for, of builds waiting for a builder."""
        return self._from_jobs(running=False)

    @property
    def running(self) -> dict[str, float]:
        """sha -> wall-clock time its build started."""
        return self._from_jobs(running=True)

    def _from_jobs(self, running: bool) -> dict[str, float]:
        to_wall = time.time() - time.monotonic()  # the queue keeps monotonic times
        return {
            job.sha: to_wall + (job.started_at if job.started_at is not None else job.queued_at)
            for job in self._jobs()
            if job.running == running
        }

    def finish(self, sha: str, failure: str | None, seconds: float) -> None:
        """A build that ended after `seconds` (`failure`: why it failed, or None)."""
        seconds = max(0.0, seconds)
        self.seconds += seconds
        if failure is None:
            self.succeeded += 1
        else:
            self.failed += 1
            self.failures.appendleft(Failure(sha=sha, finished=time.time(), seconds=seconds, message=failure))

"""The build queue alone, with a stand-in build: one job per commit, coalescing, dropping, limits."""

from __future__ import annotations

import asyncio

import pytest

from relay.building.queue import BuildQueue, Dropped, QueueFull

pytestmark = pytest.mark.asyncio


class Builds:
    """A build function whose builds finish when the test releases them."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release: dict[str, asyncio.Event] = {}

    async def __call__(self, sha: str) -> str:
        self.started.append(sha)
        await self.release.setdefault(sha, asyncio.Event()).wait()
        return f"export of {sha}"

    def finish(self, sha: str) -> None:
        self.release.setdefault(sha, asyncio.Event()).set()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_one_job_per_commit_shared_by_its_waiters() -> None:
    builds = Builds()
    queue = BuildQueue(builds, max_running=1)
    waits = [asyncio.ensure_future(queue.wait("a")) for _ in range(3)]
    await settle()
    builds.finish("a")
    assert await asyncio.gather(*waits) == ["export of a"] * 3
    assert builds.started == ["a"]
    assert not queue.has("a")


async def test_a_newer_tip_replaces_the_queued_older_one() -> None:
    builds = Builds()
    queue = BuildQueue(builds, max_running=1)
    busy = asyncio.ensure_future(queue.wait("busy"))
    await settle()
    queue.tip("main", "m1")
    queue.tip("main", "m2")
    queue.tip("feature", "f1")
    assert [j.sha for j in queue.jobs()] == ["busy", "m2", "f1"]
    builds.finish("busy")
    await busy
    await settle()
    builds.finish("m2")
    await settle()
    builds.finish("f1")
    await settle()
    assert builds.started == ["busy", "m2", "f1"]


async def test_an_older_tip_a_client_waits_for_stays() -> None:
    builds = Builds()
    queue = BuildQueue(builds, max_running=1)
    busy = asyncio.ensure_future(queue.wait("busy"))
    await settle()
    queue.tip("main", "m1")
    waiting = asyncio.ensure_future(queue.wait("m1"))
    await settle()
    queue.tip("main", "m2")
    assert [j.sha for j in queue.jobs()] == ["busy", "m1", "m2"]
    for sha in ("busy", "m1", "m2"):
        builds.finish(sha)
    assert await waiting == "export of m1"
    await busy


async def test_a_build_nobody_waits_for_any_more_is_dropped() -> None:
    builds = Builds()
    queue = BuildQueue(builds, max_running=1)
    busy = asyncio.ensure_future(queue.wait("busy"))
    gave_up = asyncio.ensure_future(queue.wait("x"))
    await settle()
    assert queue.has("x")
    gave_up.cancel()  # the client left (aiohttp cancels its handler)
    await settle()
    assert not queue.has("x")
    builds.finish("busy")
    await busy
    await settle()
    assert builds.started == ["busy"]


async def test_a_dropped_tip_fails_its_late_waiters_cleanly() -> None:
    builds = Builds()
    queue = BuildQueue(builds, max_running=1)
    busy = asyncio.ensure_future(queue.wait("busy"))
    await settle()
    queue.tip("main", "m1")
    job = queue.jobs()[1]
    queue.tip("main", "m2")
    with pytest.raises(Dropped):
        await job.future
    builds.finish("busy")
    builds.finish("m2")
    await busy


async def test_clients_are_served_before_background_tips() -> None:
    builds = Builds()
    queue = BuildQueue(builds, max_running=1)
    busy = asyncio.ensure_future(queue.wait("busy"))
    await settle()
    queue.tip("main", "m1")
    waiting = asyncio.ensure_future(queue.wait("c"))
    await settle()
    builds.finish("busy")
    await busy
    await settle()
    assert builds.started == ["busy", "c"]
    builds.finish("c")
    builds.finish("m1")
    await waiting
    await settle()
    assert builds.started == ["busy", "c", "m1"]


async def test_a_full_queue_refuses_with_retry_after() -> None:
    builds = Builds()
    queue = BuildQueue(builds, max_running=1, max_queued=2)
    busy = asyncio.ensure_future(queue.wait("busy"))
    await settle()
    queued = [asyncio.ensure_future(queue.wait(s)) for s in ("q1", "q2")]
    await settle()
    with pytest.raises(QueueFull) as refused:
        await queue.wait("q3")
    assert refused.value.status == 503
    assert int(refused.value.headers["Retry-After"]) > 0
    # A commit already queued is no new job: it is still accepted.
    again = asyncio.ensure_future(queue.wait("q1"))
    await settle()
    with pytest.raises(QueueFull):
        queue.tip("main", "t1")
    for sha in ("busy", "q1", "q2"):
        builds.finish(sha)
    await asyncio.gather(busy, again, *queued)
    await queue.close()


async def test_a_failed_build_is_not_remembered() -> None:
    calls: list[str] = []

    async def failing(sha: str) -> str:
        calls.append(sha)
        raise RuntimeError("boom")

    queue: BuildQueue[str] = BuildQueue(failing)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await queue.wait("a")
    assert calls == ["a", "a"]

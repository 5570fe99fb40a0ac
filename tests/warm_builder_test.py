"""The warm pull-mode builder with real Pants: exports equal to a cold build's, a fresh start when the
build's own inputs change, recovery from a killed daemon, nothing left running afterwards.

One example repository and one warm builder serve the whole module (each Pants start costs CPU).
"""
from __future__ import annotations

import asyncio
import filecmp
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import pytest

from relay.building.builders import ExportCommand, WarmBuilder, WarmLimits, pantsd_pid
from relay.git import Git
from relay.building.materialize import Limits, Materializer
from relay.building.processes import alive
from relay.storage.store import DiskStore
from tests.example_repo import HISTORY_MODULE, PANTS, ExampleRepo, make_example_repo

T = TypeVar("T")
# The example monorepo has no ./pants of its own: this checkout's bootstrap finds the build root.
WARM = f"env -u PYTHONPATH {PANTS} export-dists --export-dists-output-dir={{output_dir}} ::"
COLD = f"env -u PYTHONPATH {PANTS} --no-pantsd export-dists --export-dists-output-dir={{output_dir}} ::"


@dataclass
class Setup:
    repo: ExampleRepo
    loop: asyncio.AbstractEventLoop
    warm: Materializer
    warm_store: Path
    tmp: Path

    def run(self, coroutine: object) -> T:  # type: ignore[type-var]
        return self.loop.run_until_complete(coroutine)  # type: ignore[arg-type]

    @property
    def builder(self) -> WarmBuilder:
        builder = self.warm.builders[0]
        assert isinstance(builder, WarmBuilder)
        return builder


def _materializer(repo: Path, store: Path, work: Path, command: str, warm: bool) -> Materializer:
    return Materializer(
        Git(repo), DiskStore(store, scan_interval=0), ExportCommand(command),
        Limits(max_jobs=1, timeout_seconds=900), work, warm=WarmLimits() if warm else None,
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("warm")
    repo = make_example_repo(tmp / "monorepo", commits=2)
    loop = asyncio.new_event_loop()
    warm = _materializer(repo.path, tmp / "warm-store", tmp / "warm-work", WARM, warm=True)
    setup = Setup(repo, loop, warm, tmp / "warm-store", tmp)
    try:
        yield setup
    finally:
        daemons = [pantsd_pid(setup.builder.home / name) for name in ("worktree", "worktree-2")]
        loop.run_until_complete(warm.close())
        loop.close()
        # Nothing outlives the module: the daemons were stopped by their pids.
        assert not any(daemon is not None and alive(daemon) for daemon in daemons)


def _same_tree(a: Path, b: Path) -> None:
    names_a = sorted(p.relative_to(a) for p in a.rglob("*"))
    names_b = sorted(p.relative_to(b) for p in b.rglob("*"))
    assert names_a == names_b
    for name in names_a:
        if (a / name).is_file():
            assert filecmp.cmp(a / name, b / name, shallow=False), f"{name} differs"


def test_warm_build_is_byte_identical_to_a_cold_build(setup: Setup) -> None:
    first, second = setup.repo.shas
    cold = _materializer(setup.repo.path, setup.tmp / "cold-store", setup.tmp / "cold-work", COLD, warm=False)
    setup.run(cold.export(second))
    # The warm builder builds the first commit (starting its daemon), then the second incrementally.
    setup.run(setup.warm.export(first))
    daemon = setup.builder.pantsd_pid()
    assert daemon is not None, "the warm build left no Pants daemon running"
    setup.run(setup.warm.export(second))
    assert setup.builder.pantsd_pid() == daemon, "the second build did not reuse the daemon"
    _same_tree(setup.tmp / "cold-store" / second, setup.warm_store / second)
    # The worktree is clean but for Pants' own directories, and registered once with git.
    status = setup.repo.git("-C", str(setup.builder.tree), "status", "--porcelain", "--ignored")
    assert sorted(status.splitlines()) == ["!! .pants.d/", "!! .pids/"]


def test_a_change_to_pants_toml_builds_fresh(setup: Setup) -> None:
    daemon = setup.builder.pantsd_pid()
    restarts = setup.builder.restarts
    toml = (setup.repo.path / "pants.toml").read_text()
    sha = setup.repo.commit("pants.toml: a comment", {"pants.toml": toml + "\n# a change of the build's inputs\n"})
    setup.run(setup.warm.export(sha))
    assert setup.builder.restarts == restarts + 1
    assert daemon is not None and not alive(daemon), "the old daemon was not stopped"
    assert setup.builder.pantsd_pid() not in (None, daemon)


def test_a_killed_daemon_is_replaced(setup: Setup) -> None:
    daemon = setup.builder.pantsd_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    module = (setup.repo.path / HISTORY_MODULE).read_text()
    sha = setup.repo.commit("after a killed daemon", {HISTORY_MODULE: module + "\n# after kill -9\n"})
    export = setup.run(setup.warm.export(sha))
    assert export.sha == sha
    assert setup.builder.pantsd_pid() not in (None, daemon)


def test_a_daemon_is_replaced_in_the_background_and_a_build_interrupts_the_warm_up(setup: Setup) -> None:
    """With real Pants: the replacement daemon is warmed beside the serving one; a build that arrives
    meanwhile stops the warm-up's run (the standby daemon survives it) and is served by the old
    daemon; then the warm-up finishes and the daemons trade places."""
    builder = setup.builder
    builder.limits = WarmLimits(max_builds=builder.builds + 1)  # the next build makes it due
    restarts = builder.restarts
    module = (setup.repo.path / HISTORY_MODULE).read_text()
    first = setup.repo.commit("before a recycle", {HISTORY_MODULE: module + "\n# before a recycle\n"})
    setup.run(setup.warm.export(first))  # builds >= 1: a warm-up starts in the background
    serving = builder.pantsd_pid()
    assert serving is not None and builder.status()["warming"]
    standby = builder.home / "worktree-2"

    async def until(predicate: Callable[[], bool], seconds: float) -> None:
        for _ in range(int(seconds / 0.1)):
            if predicate():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"not within {seconds} s")

    setup.run(until(lambda: pantsd_pid(standby) is not None, 600))
    warming = pantsd_pid(standby)
    second = setup.repo.commit("during the warm-up", {HISTORY_MODULE: module + "\n# during the warm-up\n"})
    assert setup.run(setup.warm.export(second)).sha == second
    assert builder.restarts == restarts and builder.pantsd_pid() == serving
    assert warming is not None and alive(warming), "stopping the warm-up's run stopped the standby daemon"
    setup.run(until(lambda: not builder.status()["warming"], 900))
    assert builder.recycles == 1 and builder.tree == standby
    assert builder.pantsd_pid() == warming and not alive(serving)
    third = setup.repo.commit("after the recycle", {HISTORY_MODULE: module + "\n# after the recycle\n"})
    assert setup.run(setup.warm.export(third)).sha == third
    assert builder.pantsd_pid() == warming and builder.restarts == restarts

"""The warm builder's daemon replaced in the background, with a stand-in export command and daemon (the
real Pants runs are tests/warm_builder_test.py): no client waits for the replacement, a build stops a
warm-up and the warm-up resumes after it, nothing is left running."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import AsyncIterator

import pytest
import pytest_asyncio

from relay.building.materialize_test import git
from relay.building.builders import MAX_INTERRUPTIONS, ExportCommand, WarmBuilder, WarmLimits, pantsd_pid
from relay.building.processes import Records, alive
from relay.git import Git

pytestmark = pytest.mark.asyncio

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def commits(tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    shas = []
    for n in range(5):
        (path / "file.txt").write_text(str(n))
        git(path, "add", "file.txt")
        git(path, "commit", "-q", "-m", f"commit {n}")
        shas.append(git(path, "rev-parse", "HEAD"))
    return path, shas


def _stand_in(tmp_path: Path, pantsd: bool) -> ExportCommand:
    """relay_testing.exports as the export command: it writes which worktree each run used to
    tmp_path/trees; with `pantsd` it starts a stand-in daemon and, while tmp_path/slow exists, a
    warm-up (a run in worktree-2) waits."""
    daemon = f"--pantsd --wait-while {tmp_path / 'slow'}" if pantsd else ""
    return ExportCommand(
        f"PYTHONPATH={REPO_ROOT} {sys.executable} -m relay_testing.exports --worktree {{worktree}} "
        f"--output-dir {{output_dir}} --trees-file {tmp_path / 'trees'} --shas-file {tmp_path / 'shas'} {daemon}"
    )


@pytest_asyncio.fixture
async def builder(tmp_path: Path, commits: tuple[Path, list[str]]) -> AsyncIterator[WarmBuilder]:
    work = tmp_path / "work"
    work.mkdir()
    builder = WarmBuilder(Git(commits[0]), _stand_in(tmp_path, pantsd=True), 60, work / "warm-0", Records(work),
                          WarmLimits(max_builds=2))
    try:
        yield builder
    finally:
        daemons = [pantsd_pid(builder.home / name) for name in ("worktree", "worktree-2")]
        await builder.close()
        # Nothing outlives the builder: both worktrees' daemons were stopped by their pids.
        assert not any(pid is not None and alive(pid) for pid in daemons)


async def _build(builder: WarmBuilder, sha: str, tmp_path: Path) -> None:
    output = tmp_path / f"out-{sha[:8]}"
    output.mkdir()
    await builder.build(sha, output, tmp_path / f"{sha}.log")
    assert (output / sha / "manifest.json").is_file() or any(output.rglob("manifest.json"))


async def _commit_and_build(builder: WarmBuilder, repo: Path, text: str, tmp_path: Path) -> None:
    (repo / "file.txt").write_text(text)
    git(repo, "commit", "-qam", text)
    await _build(builder, git(repo, "rev-parse", "HEAD"), tmp_path)


async def _a_waiting_warm_up(builder: WarmBuilder, shas: list[str], tmp_path: Path) -> int | None:
    """Two builds (max_builds reached), then a warm-up that waits with its daemon up: that daemon's pid."""
    (tmp_path / "slow").touch()
    await _build(builder, shas[0], tmp_path)
    await _build(builder, shas[1], tmp_path)
    standby = builder.home / "worktree-2"
    await _until(lambda: pantsd_pid(standby) is not None)
    return pantsd_pid(standby)


async def _until(predicate: object, seconds: float = 60) -> None:
    for _ in range(int(seconds / 0.05)):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def _trees(tmp_path: Path) -> list[str]:
    return (tmp_path / "trees").read_text().split()


async def test_the_daemon_is_replaced_in_the_background(
    builder: WarmBuilder, commits: tuple[Path, list[str]], tmp_path: Path
) -> None:
    _, shas = commits
    await _build(builder, shas[0], tmp_path)
    first = builder.pantsd_pid()
    assert first is not None
    await _build(builder, shas[1], tmp_path)  # the second build: max_builds reached, a warm-up starts
    assert builder.status()["warming"]
    await _until(lambda: not builder.status()["warming"])
    # The warm-up ran the export of the last built commit's parent, then of that commit (the new
    # daemon's first edit, which Pants makes slow) in the other worktree, then they traded places.
    assert _trees(tmp_path) == ["worktree", "worktree", "worktree-2", "worktree-2"]
    assert (tmp_path / "shas").read_text().split() == [shas[0], shas[1], shas[0], shas[1]]
    assert builder.tree.name == "worktree-2" and builder.builds == 0
    assert not alive(first), "the replaced daemon was not stopped"
    second = builder.pantsd_pid()
    assert second is not None and second != first
    assert (builder.recycles, builder.restarts) == (1, 0)
    # The next build is warm on the new daemon: no restart, no new daemon.
    await _build(builder, shas[2], tmp_path)
    assert _trees(tmp_path)[-1] == "worktree-2"
    assert builder.pantsd_pid() == second and builder.restarts == 0
    assert not (builder.home / "standby-output").exists()


async def test_a_build_stops_the_warm_up_which_resumes_after_it(
    builder: WarmBuilder, commits: tuple[Path, list[str]], tmp_path: Path
) -> None:
    _, shas = commits
    (tmp_path / "slow").touch()  # warm-ups wait while it exists
    await _build(builder, shas[0], tmp_path)
    first = builder.pantsd_pid()
    await _build(builder, shas[1], tmp_path)
    await _until(lambda: "worktree-2" in _trees(tmp_path))  # the warm-up runs (and waits)
    # A client's build arrives during the warm-up: it runs at once on the serving daemon.
    await _build(builder, shas[2], tmp_path)
    assert _trees(tmp_path)[:4] == ["worktree", "worktree", "worktree-2", "worktree"]
    assert builder.pantsd_pid() == first and builder.restarts == 0
    # The warm-up resumes after the build, from the serving worktree's latest commit.
    await _until(lambda: _trees(tmp_path).count("worktree-2") == 2)
    (tmp_path / "slow").unlink()
    await _until(lambda: not builder.status()["warming"])
    assert builder.tree.name == "worktree-2" and builder.recycles == 1
    assert git(builder.tree, "rev-parse", "HEAD") == shas[2]
    assert first is not None and not alive(first)


async def test_new_build_inputs_restart_in_the_build_and_drop_the_warm_up(
    builder: WarmBuilder, commits: tuple[Path, list[str]], tmp_path: Path
) -> None:
    repo, shas = commits
    warming = await _a_waiting_warm_up(builder, shas, tmp_path)
    (repo / "pants.toml").write_text("[GLOBAL]\n")
    git(repo, "add", "pants.toml")
    git(repo, "commit", "-q", "-m", "a build input changes")
    await _build(builder, git(repo, "rev-parse", "HEAD"), tmp_path)
    assert builder.restarts == 1 and builder.tree.name == "worktree"
    # The warm-up, for the old inputs, gives up and stops its daemon.
    await _until(lambda: not builder.status()["warming"])
    assert warming is not None and not alive(warming)
    assert builder.recycles == 0


async def test_close_stops_a_warm_up_and_both_daemons(
    builder: WarmBuilder, commits: tuple[Path, list[str]], tmp_path: Path
) -> None:
    _, shas = commits
    daemons = [await _a_waiting_warm_up(builder, shas, tmp_path), builder.pantsd_pid()]
    await builder.close()
    assert not any(pid is not None and alive(pid) for pid in daemons)
    assert not (builder.home / "standby.pgid").exists()


async def test_builds_back_to_back_stop_a_warm_up_three_times_then_it_runs_beside_them(
    builder: WarmBuilder, commits: tuple[Path, list[str]], tmp_path: Path
) -> None:
    repo, shas = commits
    (tmp_path / "slow").touch()
    await _build(builder, shas[0], tmp_path)
    first = builder.pantsd_pid()
    await _build(builder, shas[1], tmp_path)  # due: the warm-up starts
    for n in range(1, MAX_INTERRUPTIONS + 1):
        await _until(lambda: _trees(tmp_path).count("worktree-2") == n)  # the warm-up runs (and waits)
        await _commit_and_build(builder, repo, f"back to back {n}", tmp_path)
    # Stopped three times: now it runs beside the next builds, which stay warm (no restart, even past
    # twice --builder-max-builds while the warm-up runs).
    await _until(lambda: _trees(tmp_path).count("worktree-2") == MAX_INTERRUPTIONS + 1)
    for n in range(2):
        await _commit_and_build(builder, repo, f"beside the warm-up {n}", tmp_path)
    assert _trees(tmp_path).count("worktree-2") == MAX_INTERRUPTIONS + 1, "the warm-up was stopped again"
    assert builder.restarts == 0 and builder.pantsd_pid() == first and builder.status()["warming"]
    (tmp_path / "slow").unlink()
    await _until(lambda: not builder.status()["warming"])
    assert builder.recycles == 1 and builder.tree.name == "worktree-2" and builder.restarts == 0


async def test_a_failed_warm_up_leaves_the_serving_daemon_and_stops_its_own(
    tmp_path: Path, commits: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    repo, shas = commits
    # The stand-in export fails in the second worktree only (after starting its daemon).
    failing = ExportCommand(
        _stand_in(tmp_path, pantsd=True).template + ' $(test "$(basename {worktree})" = worktree-2 && echo --fail)'
    )
    builder = WarmBuilder(Git(repo), failing, 60, tmp_path / "warm-0", Records(tmp_path), WarmLimits(max_builds=2))
    try:
        await _build(builder, shas[0], tmp_path)
        serving = builder.pantsd_pid()
        await _build(builder, shas[1], tmp_path)  # due: the warm-up starts, and fails
        await _until(lambda: not builder.status()["warming"])
        assert "worktree-2" in _trees(tmp_path)
        assert pantsd_pid(builder.home / "worktree-2") is None, "the failed warm-up's daemon was left running"
        assert builder.pantsd_pid() == serving and builder.tree.name == "worktree"
        assert (builder.recycles, builder.restarts) == (0, 0)
        warned = [r.getMessage() for r in caplog.records if "warming a replacement daemon failed" in r.getMessage()]
        assert len(warned) == 1 and "exit status 3" in warned[0] and "the failure the test expects" in warned[0]
        await _build(builder, shas[2], tmp_path)  # builds go on, warm, on the serving daemon
        assert builder.pantsd_pid() == serving and builder.restarts == 0
    finally:
        await builder.close()


async def test_without_a_daemon_nothing_is_warmed_or_restarted(
    tmp_path: Path, commits: tuple[Path, list[str]]
) -> None:
    """The uv exporter (or a command with --no-pantsd) leaves no daemon: builds never warm a
    replacement nor restart for their count."""
    repo, shas = commits
    builder = WarmBuilder(Git(repo), _stand_in(tmp_path, pantsd=False), 60, tmp_path / "warm-0", Records(tmp_path),
                          WarmLimits(max_builds=1))
    try:
        for sha in shas:
            await _build(builder, sha, tmp_path)
            assert not builder.status()["warming"]
        assert _trees(tmp_path) == ["worktree"] * len(shas)
        assert (builder.restarts, builder.recycles, builder.builds) == (0, 0, 0)
    finally:
        await builder.close()


async def test_a_warm_up_starts_only_when_a_second_daemon_fits(
    builder: WarmBuilder, commits: tuple[Path, list[str]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a host without room for a second daemon the serving one builds on (warm) and the warm-up
    is tried again after each build, once the host has room."""
    _, shas = commits
    room = [0]
    builder.available = lambda: room[0]
    await _build(builder, shas[0], tmp_path)
    serving = builder.pantsd_pid()
    await _build(builder, shas[1], tmp_path)  # due, but nothing fits
    await _until(lambda: not builder.status()["warming"])
    postponed = builder.status()["warm_up_postponed"]
    assert isinstance(postponed, str) and postponed.startswith("0 MiB of memory available")
    assert _trees(tmp_path) == ["worktree", "worktree"], "the warm-up ran without room"
    assert pantsd_pid(builder.home / "worktree-2") is None
    await _build(builder, shas[2], tmp_path)  # still no room: warm, on the serving daemon
    await _until(lambda: not builder.status()["warming"])
    assert builder.pantsd_pid() == serving and (builder.restarts, builder.recycles) == (0, 0)
    warned = [r.getMessage() for r in caplog.records if "not warming a replacement daemon now" in r.getMessage()]
    assert len(warned) == 1 and "--builder-max-builds" in warned[0], "said once per time without room"
    room[0] = 1 << 40
    await _build(builder, shas[3], tmp_path)  # room now: the warm-up runs and takes over
    await _until(lambda: not builder.status()["warming"])
    assert (builder.recycles, builder.restarts) == (1, 0) and builder.tree.name == "worktree-2"
    assert builder.status()["warm_up_postponed"] is None
    assert serving is not None and not alive(serving)


async def test_a_warm_up_that_loses_its_room_stops_its_daemon(
    builder: WarmBuilder, commits: tuple[Path, list[str]], tmp_path: Path
) -> None:
    _, shas = commits
    room = [1 << 40]
    builder.available = lambda: room[0]
    warming = await _a_waiting_warm_up(builder, shas, tmp_path)
    serving = builder.pantsd_pid()
    room[0] = 0
    await _build(builder, shas[2], tmp_path)  # stops the warm-up, which then finds no room
    await _until(lambda: not builder.status()["warming"])
    assert warming is not None and not alive(warming), "the half-warmed daemon was left holding memory"
    assert builder.pantsd_pid() == serving and (builder.restarts, builder.recycles) == (0, 0)
    assert builder.status()["warm_up_postponed"]


async def test_a_warm_up_starts_at_the_parent_only_when_it_has_the_same_build_inputs(
    builder: WarmBuilder, commits: tuple[Path, list[str]]
) -> None:
    repo, shas = commits
    inputs = await builder._inputs_of(shas[1])
    assert await builder._warm_up_start(shas[1], inputs) == shas[0]
    assert await builder._warm_up_start(shas[0], inputs) == shas[0], "a root commit has no parent"
    (repo / "pants.toml").write_text("[GLOBAL]\n")
    git(repo, "add", "pants.toml")
    git(repo, "commit", "-q", "-m", "a build input changes")
    changed = git(repo, "rev-parse", "HEAD")
    # A daemon started at the parent would be restarted by the run at the commit: no gain.
    assert await builder._warm_up_start(changed, await builder._inputs_of(changed)) == changed

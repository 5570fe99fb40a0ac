"""Pull mode: refs through git, building a commit on its first request, single-flight, failures."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Awaitable, Callable
from urllib.parse import urljoin

import pytest
from aiohttp.test_utils import TestClient

from relay.web.keys import Settings
from relay.conftest import MakeClient
from relay.building.builders import WarmBuilder, WarmLimits
from relay.building.materialize import ExportCommand, Limits, Materializer
from relay.index.refs import TIP_WAIT_SECONDS, Git, Refs
from relay.storage.store import DiskStore
from relay.storage.catalog import CATALOG
from relay_testing.exports import write_export

pytestmark = pytest.mark.asyncio

REPO_ROOT = Path(__file__).resolve().parents[2]
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def git(repo: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com",
    )
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    for n in range(3):
        (path / "file.txt").write_text(str(n))
        git(path, "add", "file.txt")
        git(path, "commit", "-q", "-m", f"commit {n}")
    git(path, "tag", "v1", "HEAD~1")
    return path


def fake_command(runs: Path, *extra: str) -> ExportCommand:
    python = sys.executable
    return ExportCommand(
        f"PYTHONPATH={REPO_ROOT} {python} -m relay_testing.exports --worktree {{worktree}} "
        f"--output-dir {{output_dir}} --runs-file {runs} " + " ".join(extra)
    )


async def pull_client(
    make_client: MakeClient,
    store_dir: Path,
    repo: Path,
    command: ExportCommand,
    timeout: float = 60,
    *,
    max_jobs: int = 2,
    max_queued: int = 16,
    follow: tuple[str, ...] = (),
    wait_for_tip: bool = False,
    tip_wait: float = TIP_WAIT_SECONDS,
    refresh_interval: float = 3600,
) -> tuple[TestClient, Materializer]:
    store = DiskStore(store_dir, scan_interval=0)
    materializer = Materializer(
        Git(repo), store, command, Limits(max_jobs=max_jobs, timeout_seconds=timeout, max_queued=max_queued),
        work_dir=store_dir.parent / "work",
    )
    refs = Refs(
        store, Git(repo), materializer, refresh_interval=refresh_interval, follow=follow,
        wait_for_tip=wait_for_tip, tip_wait=tip_wait,
    )
    return await make_client(Settings(), refs=refs, builds=materializer), materializer


async def until(condition: Callable[[], Awaitable[bool]], what: str, tries: int = 600) -> None:
    """Poll `condition` every 0.1 s, at most `tries` times (bounded: no test waits forever)."""
    for _ in range(tries):
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"gave up waiting: {what}")


async def test_first_request_builds_once(make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    client, materializer = await pull_client(make_client, store_dir, repo, fake_command(runs, "--sleep 1"))
    head = git(repo, "rev-parse", "HEAD")
    responses = await asyncio.gather(
        client.get(f"/{head}/simple/monorepo-chain-a/", headers=JSON),
        client.get(f"/{head[:10]}/simple/monorepo-chain-b/", headers=JSON),
    )
    assert [r.status for r in responses] == [200, 200]
    assert runs.read_text().splitlines() == ["run"]
    data = await responses[0].json(content_type=None)
    assert data["versions"] == [f"0.3+g{head[:12]}"]
    assert (store_dir / head / "manifest.json").is_file()
    # No worktree or staging is left behind, and git forgot the worktree.
    assert [p.name for p in store_dir.iterdir() if p.name != CATALOG] == [head]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("relay-")] == []
    assert list((tmp_path / "work").glob("*.lock")) == [], "a lock file per commit piles up"
    assert git(repo, "worktree", "list").count("\n") == 0
    # Served from the store now: no second run.
    assert (await client.get(f"/{head}/simple/")).status == 200
    assert runs.read_text().splitlines() == ["run"]


async def test_branch_and_tag_resolve_through_git(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    first = git(repo, "rev-parse", "HEAD~2")
    # An export pushed earlier for an older commit of main, and one of an unrelated commit.
    write_export(store_dir, first, 1, branches=())
    write_export(store_dir, "e" * 40, 7, branches=("main",))
    client, _ = await pull_client(make_client, store_dir, repo, fake_command(runs, "--sleep 1"), tip_wait=0)
    head = git(repo, "rev-parse", "HEAD")
    # With --tip-wait 0 the branch page answers at once from what is built while the tip builds.
    page = await client.get("/main/simple/monorepo-tools/", headers=JSON)
    assert page.status == 200
    assert page.headers["X-Relay-Commit"] == first and page.headers["X-Relay-Building"] == head
    assert page.headers["Cache-Control"] == "public, no-cache"
    assert (await page.json(content_type=None))["versions"] == [f"0.1+g{first[:12]}"]

    async def tip_served() -> bool:
        page = await client.get("/main/simple/monorepo-tools/", headers=JSON)
        return page.headers["X-Relay-Commit"] == head

    await until(tip_served, "main's tip built")
    page = await client.get("/main/simple/monorepo-tools/", headers=JSON)
    assert "X-Relay-Building" not in page.headers
    # The branch lists its first-parent history that the store holds, and not the export that merely
    # claims the branch name in its manifest.
    data = await page.json(content_type=None)
    assert data["versions"] == [f"0.1+g{first[:12]}", f"0.3+g{head[:12]}"]
    tag = await (await client.get("/v1/simple/monorepo-tools/", headers=JSON)).json(content_type=None)
    tagged = git(repo, "rev-parse", "v1")
    assert tag["versions"] == [f"0.2+g{tagged[:12]}"]
    assert runs.read_text().splitlines() == ["run", "run"]
    unknown = await client.get("/no-such-branch/simple/")
    assert unknown.status == 404


async def test_failed_build_is_reported_and_retried(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    client, _ = await pull_client(make_client, store_dir, repo, fake_command(runs, "--fail"))
    head = git(repo, "rev-parse", "HEAD")
    response = await client.get(f"/{head}/simple/")
    assert response.status == 502
    text = await response.text()
    assert "exit status 3" in text and "the failure the test expects" in text
    assert (await client.get(f"/{head}/simple/")).status == 502
    assert runs.read_text().splitlines() == ["run", "run"]
    assert [p.name for p in store_dir.iterdir() if p.name != CATALOG] == []


async def test_build_timeout(make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    client, _ = await pull_client(make_client, store_dir, repo, fake_command(runs, "--sleep 30"), timeout=1)
    response = await client.get(f"/{git(repo, 'rev-parse', 'HEAD')}/simple/")
    assert response.status == 504
    assert "timed out" in await response.text()


async def test_unknown_commit_is_404(make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path) -> None:
    client, _ = await pull_client(make_client, store_dir, repo, fake_command(tmp_path / "runs"))
    response = await client.get("/" + "0" * 40 + "/simple/")
    assert response.status == 404
    assert "not in the relay's repository" in await response.text()
    assert not (tmp_path / "runs").exists()


async def test_command_that_writes_nothing(make_client: MakeClient, store_dir: Path, repo: Path) -> None:
    client, _ = await pull_client(make_client, store_dir, repo, ExportCommand("echo building {sha}"))
    response = await client.get(f"/{git(repo, 'rev-parse', 'HEAD')}/simple/")
    assert response.status == 502
    assert "no valid export" in await response.text()


# The build queue in pull mode (issue 12 item 6): only reachable commits, a size limit.


async def test_a_commit_on_no_branch_or_tag_is_not_built(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    client, _ = await pull_client(make_client, store_dir, repo, fake_command(runs))
    # A commit object the repository has, on no branch or tag (e.g. of a deleted branch).
    dangling = git(repo, "commit-tree", "-p", "HEAD", "-m", "dangling", "HEAD^{tree}")
    response = await client.get(f"/{dangling}/simple/")
    assert response.status == 404
    assert "--build-unreachable" in await response.text()
    assert not runs.exists()


async def test_a_full_build_queue_answers_503_with_retry_after(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    client, materializer = await pull_client(
        make_client, store_dir, repo, fake_command(runs, "--sleep 2"), max_jobs=1, max_queued=1
    )
    shas = git(repo, "rev-list", "HEAD").split()
    running = asyncio.ensure_future(client.get(f"/{shas[0]}/simple/"))
    queued = asyncio.ensure_future(client.get(f"/{shas[1]}/simple/"))

    async def both_in_queue() -> bool:
        return len(materializer.status()) == 2

    await until(both_in_queue, "two builds in the queue")
    refused = await client.get(f"/{shas[2]}/simple/")
    assert refused.status == 503
    assert int(refused.headers["Retry-After"]) > 0
    assert "queue is full" in await refused.text()
    assert [r.status for r in await asyncio.gather(running, queued)] == [200, 200]


# A leftover directory under a commit's name (issue 12 item 7).


@pytest.mark.parametrize("leftover", ["no manifest", "a damaged manifest"])
async def test_a_leftover_invalid_export_directory_is_replaced_by_the_build(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path, leftover: str
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (store_dir / head).mkdir()
    (store_dir / head / ("junk.txt" if leftover == "no manifest" else "manifest.json")).write_text("{not json")
    client, _ = await pull_client(make_client, store_dir, repo, fake_command(tmp_path / "runs"))
    response = await client.get(f"/{head}/simple/monorepo-chain-a/", headers=JSON)
    assert response.status == 200, await response.text()
    page = f"/{head}/simple/monorepo-chain-a/"
    got = await client.get(urljoin(page, (await response.json(content_type=None))["files"][0]["url"]))
    assert got.status == 200, await got.text()
    assert sorted(p.name for p in store_dir.iterdir() if not p.name.startswith((".relay-lease-", CATALOG))) == [head]
    assert (store_dir / head / "manifest.json").read_text().startswith("{\n")


# Git processes per request (issue 12 item 8).


class CountingGit(Git):
    """A Git that counts its processes, the fetches among them, and the most at once."""

    def __init__(self, repo: Path) -> None:
        super().__init__(repo)
        self.calls: list[tuple[str, ...]] = []
        self.now = 0
        self.most = 0

    async def _run(self, args: tuple[str, ...], timeout: float, cwd: Path) -> str:
        self.calls.append(args)
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0.01)  # long enough for requests to overlap
            return await super()._run(args, timeout, cwd)
        finally:
            self.now -= 1


async def test_unknown_shas_and_names_cost_bounded_coalesced_git_processes(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    counting = CountingGit(clone)
    store = DiskStore(store_dir, scan_interval=0)
    materializer = Materializer(counting, store, fake_command(tmp_path / "runs"), work_dir=tmp_path / "work")
    client = await make_client(
        Settings(), refs=Refs(store, counting, materializer, refresh_interval=3600), builds=materializer
    )
    unknown = [f"{n:040x}" for n in range(1, 31)]
    responses = await asyncio.gather(*(client.get(f"/{sha}/simple/") for sha in unknown))
    assert {r.status for r in responses} == {404}
    fetches = [c for c in counting.calls if c[0] == "fetch"]
    assert 1 <= len(fetches) <= 2, f"{len(fetches)} fetches for 30 unknown commits"
    assert counting.most <= counting.max_processes
    # Asked again soon: the misses are remembered.
    before = len(counting.calls)
    assert (await client.get(f"/{unknown[0]}/simple/")).status == 404
    assert len(counting.calls) == before
    # Unknown branch names: one read of every ref, not a few processes per name.
    before = len(counting.calls)
    names = [f"no-such-branch-{n}" for n in range(100)]
    responses = await asyncio.gather(*(client.get(f"/{name}/simple/") for name in names))
    assert {r.status for r in responses} == {404}
    assert len(counting.calls) - before <= 2, counting.calls[before:]


# A failed build's log (issue 12 item 11).


async def test_a_failed_build_reads_only_the_tail_of_its_log_off_the_loop(
    make_client: MakeClient, store_dir: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import tracemalloc

    from relay.building import processes

    threads: list[str] = []
    tail = processes.log_tail

    def recording_tail(*args: object) -> str:
        threads.append(threading.current_thread().name)
        return tail(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(processes, "log_tail", recording_tail)
    # 48 MiB of output on one line, then the lines that say what went wrong.
    command = ExportCommand("head -c 50331648 /dev/zero | tr '\\0' x; echo; echo the last line; exit 3")
    client, _ = await pull_client(make_client, store_dir, repo, command)
    tracemalloc.start()
    try:
        response = await client.get(f"/{git(repo, 'rev-parse', 'HEAD')}/simple/")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status == 502
    text = await response.text()
    assert text.rstrip().endswith("the last line") and "exit status 3" in text
    assert len(text) < 70_000
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.0f} MiB while answering"
    assert threads and threading.main_thread().name not in threads


# Branches that move (issue 11).


async def test_a_followed_branch_is_built_when_the_refresh_sees_it_move(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    client, _ = await pull_client(
        make_client, store_dir, repo, fake_command(runs), follow=("main",), refresh_interval=0.2
    )
    head = git(repo, "rev-parse", "HEAD")

    async def built(sha: str) -> bool:
        return (store_dir / sha / "manifest.json").is_file()

    await until(lambda: built(head), "main's tip built without a request")
    (repo / "file.txt").write_text("moved")
    git(repo, "commit", "-qam", "main moves")
    moved = git(repo, "rev-parse", "HEAD")
    await until(lambda: built(moved), "main's new tip built without a request")
    page = await client.get("/main/simple/")
    assert page.headers["X-Relay-Commit"] == moved and "X-Relay-Building" not in page.headers
    assert runs.read_text().splitlines() == ["run", "run"]


async def test_wait_for_tip_makes_branch_pages_wait(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path
) -> None:
    write_export(store_dir, git(repo, "rev-parse", "HEAD~1"), 2, branches=())
    client, _ = await pull_client(
        make_client, store_dir, repo, fake_command(tmp_path / "runs", "--sleep 1"), wait_for_tip=True
    )
    page = await client.get("/main/simple/")
    assert page.headers["X-Relay-Commit"] == git(repo, "rev-parse", "HEAD")
    assert "X-Relay-Building" not in page.headers


async def test_health_lists_queued_and_running_builds(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path
) -> None:
    client, materializer = await pull_client(
        make_client, store_dir, repo, fake_command(tmp_path / "runs", "--sleep 2"), max_jobs=1
    )
    shas = git(repo, "rev-list", "HEAD").split()
    waits = [asyncio.ensure_future(client.get(f"/{sha}/simple/")) for sha in shas[:2]]

    async def two_builds() -> bool:
        return len(materializer.status()) == 2

    await until(two_builds, "two builds")
    builds = (await (await client.get("/-/health")).json())["builds"]
    assert sorted((b["state"], b["sha"] in shas[:2]) for b in builds) == [("queued", True), ("running", True)]
    assert all(b["age_s"] >= 0 and b["waiting_clients"] == 1 for b in builds)
    await asyncio.gather(*waits)


# The warm builder with a stand-in export command (the real Pants runs are tests/warm_builder_test.py).


async def warm_client(
    make_client: MakeClient, store_dir: Path, repo: Path, command: ExportCommand, *, max_jobs: int = 1,
    timeout: float = 60,
) -> tuple[TestClient, Materializer]:
    store = DiskStore(store_dir, scan_interval=0)
    materializer = Materializer(
        Git(repo), store, command, Limits(max_jobs=max_jobs, timeout_seconds=timeout),
        work_dir=store_dir.parent / "work", warm=WarmLimits(),
    )
    refs = Refs(store, Git(repo), materializer, refresh_interval=3600)
    return await make_client(Settings(), refs=refs, builds=materializer), materializer


async def test_a_warm_builder_survives_a_timed_out_build(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path
) -> None:
    slow = tmp_path / "slow"
    slow.touch()
    command = ExportCommand(f"if [ -e {slow} ]; then sleep 30; fi; " + fake_command(tmp_path / "runs").template)
    client, materializer = await warm_client(make_client, store_dir, repo, command, timeout=1)
    head = git(repo, "rev-parse", "HEAD")
    assert (await client.get(f"/{head}/simple/")).status == 504
    builder = materializer.builders[0]
    assert isinstance(builder, WarmBuilder) and builder.restarts == 1
    slow.unlink()
    assert (await client.get(f"/{head}/simple/")).status == 200
    # The same worktree, moved to each commit.
    assert (await client.get(f"/{git(repo, 'rev-parse', 'HEAD~1')}/simple/")).status == 200
    assert git(repo, "worktree", "list").count("\n") == 1


async def test_two_warm_builders_never_share_a_worktree(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    command = ExportCommand(
        f"echo start {{worktree}} >> {trace}; sleep 0.3; echo end {{worktree}} >> {trace}; "
        + fake_command(tmp_path / "runs").template
    )
    client, _ = await warm_client(make_client, store_dir, repo, command, max_jobs=2)
    shas = git(repo, "rev-list", "HEAD").split()
    responses = await asyncio.gather(*(client.get(f"/{sha}/simple/") for sha in shas))
    assert [r.status for r in responses] == [200] * 3
    lines = [line.split() for line in trace.read_text().splitlines()]
    trees = {tree for _, tree in lines}
    assert len(trees) == 2, "two builders, two worktrees"
    for tree in trees:
        events = [event for event, t in lines if t == tree]
        assert events == ["start", "end"] * (len(events) // 2), f"overlapping builds in {tree}"


# Branch pages fresh within a bound (issue 20 item 1).


def gated_command(runs: Path, gate: Path) -> ExportCommand:
    """The stand-in export, started at once but finishing only once `gate` exists (or after 60 s)."""
    wait = f"for i in $(seq 1200); do [ -e {gate} ] && break; sleep 0.05; done; "
    return ExportCommand(wait + fake_command(runs).template)


async def test_a_branch_page_waits_for_its_tip_within_the_bound(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    previous = git(repo, "rev-parse", "HEAD~1")
    write_export(store_dir, previous, 2, branches=())
    # The default bound (10 s) and a build of about a second: the page names the tip, not `previous`.
    client, _ = await pull_client(make_client, store_dir, repo, fake_command(runs, "--sleep 1"))
    head = git(repo, "rev-parse", "HEAD")
    pages = await asyncio.gather(*(client.get("/main/simple/monorepo-tools/", headers=JSON) for _ in range(12)))
    assert {(p.status, p.headers["X-Relay-Commit"]) for p in pages} == {(200, head)}
    assert not any("X-Relay-Building" in p.headers for p in pages)
    data = await pages[0].json(content_type=None)
    assert data["versions"] == [f"0.2+g{previous[:12]}", f"0.3+g{head[:12]}"]
    # Twelve clients during one build started one build.
    assert runs.read_text().splitlines() == ["run"]


async def test_a_build_longer_than_the_bound_answers_from_the_previous_export(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runs, gate = tmp_path / "runs", tmp_path / "gate"
    previous = git(repo, "rev-parse", "HEAD~1")
    write_export(store_dir, previous, 2, branches=())
    client, materializer = await pull_client(
        make_client, store_dir, repo, gated_command(runs, gate), tip_wait=0.5
    )
    head = git(repo, "rev-parse", "HEAD")
    # Many clients at once, and more while the build goes on: all share one deadline and one build.
    first = await asyncio.gather(*(client.get("/main/simple/monorepo-tools/", headers=JSON) for _ in range(10)))
    later = await asyncio.gather(*(client.get(f"/main/simple/{p}/", headers=JSON) for p in ("monorepo-tools", "monorepo-chain-a")))
    for page in (*first, *later):
        assert page.status == 200
        assert page.headers["X-Relay-Commit"] == previous
        assert page.headers["X-Relay-Building"] == head
        assert page.headers["Cache-Control"] == "public, no-cache"
    assert (await first[0].json(content_type=None))["versions"] == [f"0.2+g{previous[:12]}"]
    stale = [r.getMessage() for r in caplog.records if "not its tip" in r.getMessage()]
    assert stale == [f"branch main: serving {previous}, not its tip {head} (still building after 0.5 s)"]
    assert [s["sha"] for s in materializer.status()] == [head]
    # The page for people says what it serves and what is building.
    people = await (await client.get("/main/")).text()
    assert f"serving <code>{previous[:12]}</code>" in people and f"<code>{head[:12]}</code> building" in people
    gate.touch()

    async def tip_served() -> bool:
        page = await client.get("/main/simple/monorepo-tools/", headers=JSON)
        return page.headers["X-Relay-Commit"] == head and "X-Relay-Building" not in page.headers

    await until(tip_served, "main's tip served once built")
    assert runs.read_text().splitlines() == ["run"]
    assert "building" not in await (await client.get("/main/")).text()


async def test_a_tip_that_fails_to_build_leaves_the_branch_on_its_newest_built_commit(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    previous = git(repo, "rev-parse", "HEAD~1")
    write_export(store_dir, previous, 2, branches=())
    client, _ = await pull_client(make_client, store_dir, repo, fake_command(runs, "--fail"))
    for _ in range(3):
        page = await client.get("/main/simple/monorepo-tools/", headers=JSON)
        assert page.status == 200 and page.headers["X-Relay-Commit"] == previous
        assert "X-Relay-Building" not in page.headers
    # The failed tip is not rebuilt by every page request; asked by its sha it is, and says why.
    assert runs.read_text().splitlines() == ["run"]
    head = git(repo, "rev-parse", "HEAD")
    failed = await client.get(f"/{head}/simple/")
    assert failed.status == 502 and "the failure the test expects" in await failed.text()

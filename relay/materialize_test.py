"""Pull mode: refs through git, building a commit on its first request, single-flight, failures."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from relay.app import Settings
from relay.conftest import MakeClient
from relay.materialize import ExportCommand, Limits, Materializer
from relay.refs import Git, Refs
from relay.store import DiskStore
from relay.testing import write_export

pytestmark = pytest.mark.asyncio

REPO_ROOT = Path(__file__).resolve().parent.parent
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
        f"PYTHONPATH={REPO_ROOT} {python} -m relay.testing --worktree {{worktree}} "
        f"--output-dir {{output_dir}} --runs-file {runs} " + " ".join(extra)
    )


async def pull_client(
    make_client: MakeClient, store_dir: Path, repo: Path, command: ExportCommand, timeout: float = 60
) -> tuple[TestClient, Materializer]:
    store = DiskStore(store_dir, scan_interval=0)
    materializer = Materializer(
        Git(repo), store, command, Limits(max_jobs=2, timeout_seconds=timeout), work_dir=store_dir.parent
    )
    refs = Refs(store, Git(repo), materializer, refresh_interval=3600)
    return await make_client(Settings(), refs=refs), materializer


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
    assert [p.name for p in store_dir.iterdir()] == [head]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("relay-")] == []
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
    client, _ = await pull_client(make_client, store_dir, repo, fake_command(runs))
    data = await (await client.get("/main/simple/monorepo-tools/", headers=JSON)).json(content_type=None)
    head = git(repo, "rev-parse", "HEAD")
    # The tip was built; the branch lists its first-parent history that the store holds, and not the
    # export that merely claims the branch name in its manifest.
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
    assert [p.name for p in store_dir.iterdir()] == []


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

"""Refs: one reading of the repository's refs for resolution and for the pages for people."""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
from pathlib import Path

import pytest

from relay.web.keys import Settings
from relay.conftest import MakeClient
from relay.building.materialize_test import git
from relay.index import refs as refs_module
from relay.contract import Export
from relay.index.refs import Git, Refs
from relay.storage.store import DiskStore
from relay_testing.exports import write_export

pytestmark = pytest.mark.asyncio


async def test_pages_and_resolution_name_one_commit_when_the_local_branch_lags_its_remote(
    make_client: MakeClient, store_dir: Path, tmp_path: Path
) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    for n in range(2):
        (origin / "file.txt").write_text(str(n))
        git(origin, "add", "file.txt")
        git(origin, "commit", "-q", "-m", f"commit {n}")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    behind = git(clone, "rev-parse", "main")
    (origin / "file.txt").write_text("moved")
    git(origin, "commit", "-qam", "main moves on")
    ahead = git(origin, "rev-parse", "main")
    write_export(store_dir, behind, 2, branches=())
    write_export(store_dir, ahead, 3, branches=())
    store = DiskStore(store_dir, scan_interval=0)
    refs = Refs(store, Git(clone), refresh_interval=3600)
    client = await make_client(Settings(), refs=refs)
    # The relay's fetch moves origin/main; the clone's own main stays where it was cloned.
    await refs.refresh()
    assert git(clone, "rev-parse", "main") == behind and git(clone, "rev-parse", "origin/main") == ahead

    served = (await client.get("/main/simple/")).headers["X-Relay-Commit"]
    home = await (await client.get("/")).text()
    row = re.search(r'href="main/">main</a>.*?</tr>', home, re.S)
    assert row is not None, home
    listed = re.findall(r"<code>([0-9a-f]{12})</code>", row.group(0))
    ref_page = await (await client.get("/main/")).text()
    assert served == ahead
    assert listed == [ahead[:12]], "the home page names the commit /main/simple/ serves"
    assert f"commit <code>{ahead}</code>" in ref_page
    assert [(r.kind, r.name, r.sha) for r in await refs.listing()] == [("branch", "main", ahead)]


def _repo_with_a_commit(tmp_path: Path) -> tuple[Path, str]:
    """A repository whose main has one commit (file.txt "0"), and that commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "file.txt").write_text("0")
    git(repo, "add", "file.txt")
    git(repo, "commit", "-q", "-m", "first")
    return repo, git(repo, "rev-parse", "HEAD")


async def test_a_branch_page_right_after_a_commit_resolves_the_new_tip(
    make_client: MakeClient, store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, first = _repo_with_a_commit(tmp_path)
    write_export(store_dir, first, 1, branches=())
    refs = Refs(DiskStore(store_dir, scan_interval=0), Git(repo), refresh_interval=3600)
    client = await make_client(Settings(), refs=refs)
    assert (await client.get("/main/simple/")).headers["X-Relay-Commit"] == first
    (repo / "file.txt").write_text("1")
    git(repo, "commit", "-qam", "second")
    second = git(repo, "rev-parse", "HEAD")
    write_export(store_dir, second, 2, branches=())
    # At once, with no time bound to help: the branch's ref file changed, so the refs are read again.
    monkeypatch.setattr(refs_module, "BRANCH_REFS_SECONDS", 3600.0)
    assert (await client.get("/main/simple/")).headers["X-Relay-Commit"] == second
    # Packed refs too (`git pack-refs` moves the branch into packed-refs, then a commit in between).
    git(repo, "pack-refs", "--all")
    (repo / "file.txt").write_text("2")
    git(repo, "commit", "-qam", "third")
    third = git(repo, "rev-parse", "HEAD")
    git(repo, "pack-refs", "--all")
    write_export(store_dir, third, 3, branches=())
    assert (await client.get("/main/simple/")).headers["X-Relay-Commit"] == third
    # Nothing changed (once file times are past the slack for coarse clocks): requests read no refs
    # (no git process), only the ref files' stat.
    await asyncio.sleep(2 * refs_module.REF_TIME_SLACK)
    assert (await client.get("/main/simple/")).headers["X-Relay-Commit"] == third
    started = refs.git.processes if refs.git is not None else 0
    for _ in range(5):
        assert (await client.get("/main/simple/")).headers["X-Relay-Commit"] == third
    assert refs.git is not None and refs.git.processes == started


class _BuildsIntoTheStore:
    """Pull mode's stand-in: building a commit writes its export into the store directory and returns it."""

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self.built: list[str] = []

    async def export(self, sha: str, in_repo: object = None) -> Export:
        return self._build(sha)

    async def export_within(self, branch: str, sha: str, seconds: float) -> Export | None:
        return self._build(sha)

    def tip(self, branch: str, sha: str) -> None:
        pass

    def building(self, sha: str) -> bool:
        return False

    def _build(self, sha: str) -> Export:
        self.built.append(sha)
        return write_export(self.store_dir, sha, len(self.built), branches=())


async def test_a_branch_page_shows_its_tip_as_soon_as_it_is_built_while_the_listing_lags(
    make_client: MakeClient, store_dir: Path, tmp_path: Path
) -> None:
    """A large manifest is parsed on the store's thread, after its build returned: the page asked for
    during that build shows the tip the build made, not a 404 (first build) or the commit before."""
    repo, first = _repo_with_a_commit(tmp_path)
    store = DiskStore(store_dir, scan_interval=0, background_parse_bytes=0)  # every manifest on its thread
    builds = _BuildsIntoTheStore(store_dir)
    refs = Refs(store, Git(repo), builds=builds, refresh_interval=3600)
    client = await make_client(Settings(), refs=refs)
    parsing = threading.Event()
    assert store._background is not None
    try:
        store._background.submit(parsing.wait)  # the store's thread is busy: its listing lags
        # The first build: nothing older to show.
        response = await client.get("/main/simple/")
        assert response.status == 200 and response.headers["X-Relay-Commit"] == first
        parsing.set()
        for _ in range(200):
            if first in store.exports():
                break
            await asyncio.sleep(0.05)
        assert first in store.exports()
        # The next tip, built while the listing lags again: the page shows it, not `first`.
        parsing.clear()
        store._background.submit(parsing.wait)
        (repo / "file.txt").write_text("1")
        git(repo, "commit", "-qam", "second")
        second = git(repo, "rev-parse", "HEAD")
        response = await client.get("/main/simple/")
        assert response.status == 200 and response.headers["X-Relay-Commit"] == second
        assert second not in store.exports(), "the listing did not lag: the test shows nothing"
        assert builds.built == [first, second]
    finally:
        parsing.set()
        store.close_parser()

"""Shared fixtures of the relay tests."""

from __future__ import annotations

import functools
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest
import pytest_asyncio  # pants: no-infer-dep (installed with pytest-aiohttp, the [pytest] tool)
from aiohttp.test_utils import TestClient

from relay.web.app import Settings, create_app
from relay.auth.credentials import Authenticator
from relay.contract import Export
from relay.building.materialize import Materializer
from relay.index.refs import Refs
from relay_testing.seaweedfs import SeaweedFS
from relay.storage.store import DiskStore
from relay_testing.exports import DistSpec, fake_sha, write_export


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


@pytest.fixture
def exports(store_dir: Path) -> list[Export]:
    """Three commits of main (counts 1-3), one of a feature branch, and a tagged release on main."""
    return [
        write_export(store_dir, fake_sha(1), 1, branches=("main",)),
        write_export(store_dir, fake_sha(2), 2, branches=("main",), tags=("v1",)),
        write_export(store_dir, fake_sha(3), 3, branches=("main",)),
        write_export(store_dir, fake_sha(4), 3, branches=("feature/x",)),
    ]


MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_client(aiohttp_client: Any, store_dir: Path) -> MakeClient:
    async def make(
        settings: Settings = Settings(),
        auth: Authenticator | None = None,
        refs: Refs | None = None,
        builds: Materializer | None = None,
    ) -> TestClient:
        # One store for the app and the refs (pull mode publishes into the refs' store).
        store = refs.store if refs is not None else DiskStore(store_dir, scan_interval=0.0)
        return await aiohttp_client(create_app(store, refs, settings, auth, builds))

    return make


@pytest_asyncio.fixture
async def client(make_client: MakeClient, exports: list[Export]) -> TestClient:
    return await make_client()


# The object store: one SeaweedFS for the whole run (it takes seconds to start), a fresh bucket per test.


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@functools.lru_cache(maxsize=4)
def s3_client(server: SeaweedFS) -> Any:
    """A synchronous botocore client for test set-up and damage behind the relay's back."""
    import botocore.session  # pants: no-infer-dep (comes with aiobotocore)

    env = server.env
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="session")
def s3_bucket(seaweedfs: SeaweedFS) -> str:
    # One bucket for the run (SeaweedFS takes seconds to make one), a fresh prefix per test.
    bucket = "relay-" + secrets.token_hex(6)
    s3_client(seaweedfs).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def s3_url(seaweedfs: SeaweedFS, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """s3://BUCKET/PREFIX of an empty prefix; the AWS variables point at the test server."""
    for name, value in seaweedfs.env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    return f"s3://{s3_bucket}/t-{secrets.token_hex(6)}"


# A monorepo with modules, URL requirements, an environment dist and a history (the pages for people).

NS = "monorepo.textkit"
STATS = 'def mean(xs):\n    return sum(xs) / len(xs)\n'


def textkit_dists(attrs: str = "attrs>=22.2", cli_message: str = "") -> list[DistSpec]:
    return [
        DistSpec(
            f"{NS}.core",
            third_party=(attrs,),
            files=(("textkit/core/stats.py", STATS), ("textkit/core/words.txt", "a\nb\n")),
        ),
        DistSpec(
            f"{NS}.cli",
            requires=(f"{NS}.core",),
            third_party=("click @ git+https://github.com/pallets/click@8.1.7",),
            files=(("textkit/cli/main.py", f"# {cli_message}\n"),),
        ),
        DistSpec("monorepo.envs.nlp", requires=(f"{NS}.core", f"{NS}.cli"), environment=True),
        DistSpec("monorepo.tools"),
    ]


def story_git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_DATE="2026-01-02T03:04:05+00:00", GIT_COMMITTER_DATE="2026-01-02T03:04:05+00:00")
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    return subprocess.run(
        ["git", "-C", str(repo), *identity, *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


@dataclass(frozen=True)
class Story:
    repo: Path
    store: DiskStore
    exports: tuple[Export, ...]  # newest first
    shas: tuple[str, ...]  # oldest first


@pytest.fixture
def story(tmp_path: Path, store_dir: Path) -> Story:
    """main: 1 adds everything; 2 changes the cli only; 3 moves core's attrs pin (so cli and the env move too)."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    shas = []
    for message in ("textkit: first cut", "cli: --verbose <b>bold</b>", "core: attrs 23 for slots"):
        (repo / "log").write_text(message)
        story_git(repo, "add", "log")
        story_git(repo, "commit", "-q", "-m", message)
        shas.append(story_git(repo, "rev-parse", "HEAD"))
    one, two, three = [(sha, n + 1) for n, sha in enumerate(shas)]
    exports = [
        write_export(store_dir, one[0], 1, textkit_dists(), origins={}),
        write_export(store_dir, two[0], 2, textkit_dists(cli_message="v"), origins={f"{NS}.core": one, "monorepo.tools": one}),
        write_export(store_dir, three[0], 3, textkit_dists("attrs>=23.1", "v"), origins={"monorepo.tools": one}),
    ]
    store = DiskStore(store_dir, scan_interval=0.0)
    assert len(store.exports()) == 3
    return Story(repo, store, tuple(reversed(exports)), tuple(shas))



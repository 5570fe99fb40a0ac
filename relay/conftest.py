"""Shared fixtures of the relay tests."""

from __future__ import annotations

import functools
import secrets
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest
import pytest_asyncio  # pants: no-infer-dep (installed with pytest-aiohttp, the [pytest] tool)
from aiohttp.test_utils import TestClient

from relay.app import Settings, create_app
from relay.auth import Authenticator
from relay.contract import Export
from relay.materialize import Materializer
from relay.refs import Refs
from relay.seaweedfs import SeaweedFS
from relay.store import DiskStore
from relay.testing import fake_sha, write_export


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

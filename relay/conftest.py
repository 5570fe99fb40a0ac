"""Shared fixtures of the relay tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
import pytest_asyncio  # pants: no-infer-dep (installed with pytest-aiohttp, the [pytest] tool)
from aiohttp.test_utils import TestClient

from relay.app import Settings, create_app
from relay.auth import Authenticator
from relay.contract import Export
from relay.refs import Refs
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
        settings: Settings = Settings(), auth: Authenticator | None = None, refs: Refs | None = None
    ) -> TestClient:
        # One store for the app and the refs (pull mode publishes into the refs' store).
        store = refs.store if refs is not None else DiskStore(store_dir, scan_interval=0.0)
        return await aiohttp_client(create_app(store, refs, settings, auth))

    return make


@pytest_asyncio.fixture
async def client(make_client: MakeClient, exports: list[Export]) -> TestClient:
    return await make_client()

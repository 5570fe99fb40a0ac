"""One contract for every Store: the disk store and the S3 store (on SeaweedFS) pass the same tests."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest
import pytest_asyncio  # pants: no-infer-dep (installed with pytest-aiohttp, the [pytest] tool)

from relay.conftest import s3_client
from relay.contract import MANIFEST, ContractError, Export
from relay.storage.s3 import S3Location, S3Store
from relay_testing.seaweedfs import SeaweedFS
from relay.storage.store import DiskStore, EvictionPolicy, NotListed, Store
from relay_testing.exports import fake_sha, write_export

pytestmark = pytest.mark.asyncio

DAY = 86400.0


@dataclass
class Backend:
    """A store plus what a test needs to do behind its back."""

    store: Store
    # Delete one file of an export directly in the backing storage.
    remove_file: Callable[[str, str], None]
    # Put a whole export directory's files (not its manifest) directly into the backing storage.
    put_files_only: Callable[[Path], None]


@pytest_asyncio.fixture(params=["disk", "s3"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "disk":
        root = tmp_path / "store"
        root.mkdir()

        def copy_files(directory: Path) -> None:
            shutil.copytree(directory, root / directory.name, ignore=shutil.ignore_patterns(MANIFEST))

        store: Store = DiskStore(root, scan_interval=0)
        yield Backend(store, lambda key, f: (root / key / f).unlink(), copy_files)
        return
    server: SeaweedFS = request.getfixturevalue("seaweedfs")
    location = S3Location.parse(request.getfixturevalue("s3_url"))
    client = s3_client(server)

    def remove(key: str, filename: str) -> None:
        digest = store.exports()[key].export.digest(filename)
        assert digest is not None
        client.delete_object(Bucket=location.bucket, Key=f"{location.prefix}files/{digest[0]}")

    def put_files(directory: Path) -> None:
        for path in directory.iterdir():
            if path.is_file() and path.name != MANIFEST:
                body = path.read_bytes()
                client.put_object(
                    Bucket=location.bucket, Key=f"{location.prefix}files/{hashlib.sha256(body).hexdigest()}", Body=body
                )

    store = S3Store(location, scan_interval=3600, grace_seconds=0)
    await store.start()
    try:
        yield Backend(store, remove, put_files)
    finally:
        await store.close()


def _export(tmp_path: Path, n: int) -> tuple[Export, Path]:
    out = tmp_path / f"out-{n}"
    out.mkdir(exist_ok=True)
    export = write_export(out, fake_sha(n), n)
    return export, out / export.key


async def test_publish_then_list_and_read(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    export, directory = _export(tmp_path, 1)
    stored = await store.publish(directory)
    assert stored.export == export
    assert list(store.exports()) == [export.key]
    assert store.exports()[export.key].size >= sum(d.size + d.metadata_size for d in export.dists)
    for dist in export.dists:
        body = await store.read(export.key, dist.filename)
        assert hashlib.sha256(body).hexdigest() == dist.sha256
        async with store.open(export.key, dist.metadata_filename) as blob:
            assert blob.size == dist.metadata_size
            streamed = b"".join([chunk async for chunk in blob.chunks])
        assert hashlib.sha256(streamed).hexdigest() == dist.metadata_sha256


async def test_publishing_the_same_export_twice_keeps_one(backend: Backend, tmp_path: Path) -> None:
    export, directory = _export(tmp_path, 1)
    copy = tmp_path / "copy" / export.key
    shutil.copytree(directory, copy)
    generation = backend.store.generation
    await backend.store.publish(directory)
    assert (await backend.store.publish(copy)).export == export
    assert list(backend.store.exports()) == [export.key]
    assert backend.store.generation != generation


async def test_serves_only_listed_names(backend: Backend, tmp_path: Path) -> None:
    export, directory = _export(tmp_path, 1)
    await backend.store.publish(directory)
    dist = export.dists[0]
    for name in (MANIFEST, "../" + dist.filename, "/etc/passwd", "simple/index.html", dist.filename + "x"):
        with pytest.raises(NotListed):
            await backend.store.read(export.key, name)
        with pytest.raises(NotListed):
            async with backend.store.open(export.key, name):
                pass
    with pytest.raises(NotListed):
        await backend.store.read(fake_sha(9), dist.filename)


async def test_files_without_a_manifest_are_not_an_export(backend: Backend, tmp_path: Path) -> None:
    export, directory = _export(tmp_path, 1)
    backend.put_files_only(directory)
    await backend.store.refresh()
    assert dict(backend.store.exports()) == {}


async def test_an_export_missing_a_listed_file_is_skipped(backend: Backend, tmp_path: Path) -> None:
    good, good_dir = _export(tmp_path, 1)
    bad, bad_dir = _export(tmp_path, 2)
    await backend.store.publish(good_dir)
    # Published, then damaged behind the store's back: a store that starts now must skip it.
    await backend.store.publish(bad_dir)
    backend.remove_file(bad.key, bad.dists[0].filename)
    fresh = await _reopen(backend.store)
    try:
        assert list(fresh.exports()) == [good.key]
        assert "missing" in fresh.problems[bad.key]
    finally:
        await fresh.close()


async def _reopen(store: Store) -> Store:
    """A second store over the same storage: what another replica, or a restart, sees."""
    if isinstance(store, DiskStore):
        return DiskStore(store.root, scan_interval=0)
    assert isinstance(store, S3Store)
    other = S3Store(store.location, scan_interval=3600, grace_seconds=store.grace_seconds)
    await other.start()
    return other


async def test_publish_refuses_an_incomplete_directory(backend: Backend, tmp_path: Path) -> None:
    export, directory = _export(tmp_path, 1)
    (directory / export.dists[0].filename).unlink()
    with pytest.raises(ContractError, match="missing"):
        await backend.store.publish(directory)
    manifest = directory / MANIFEST
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format": 99}))
    with pytest.raises(ContractError, match="format"):
        await backend.store.publish(directory)
    assert dict(backend.store.exports()) == {}


async def test_a_publish_is_seen_by_another_store(backend: Backend, tmp_path: Path) -> None:
    other = await _reopen(backend.store)
    try:
        export, directory = _export(tmp_path, 1)
        await backend.store.publish(directory)
        await other.refresh()
        assert list(other.exports()) == [export.key]
        assert await other.read(export.key, export.dists[0].filename)
    finally:
        await other.close()


async def test_eviction_by_age_spares_pinned_exports(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    a, a_dir = _export(tmp_path, 1)
    b, b_dir = _export(tmp_path, 2)
    await store.publish(a_dir)
    await store.publish(b_dir)
    later = time.time() + 40 * DAY
    with store.pin(a.key):
        assert await store.evict(EvictionPolicy(max_age_seconds=30 * DAY), now=later) == [b.key]
    assert list(store.exports()) == [a.key]
    with pytest.raises(NotListed):
        await store.read(b.key, b.dists[0].filename)
    assert await store.evict(EvictionPolicy(max_age_seconds=30 * DAY), now=time.time()) == []


async def test_eviction_by_size_takes_the_least_recently_used(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    exports = []
    for n in (1, 2, 3):
        export, directory = _export(tmp_path, n)
        await store.publish(directory)
        exports.append(export)
    store.touch(exports[0].key)
    store.touch(exports[2].key)
    cap = sum(store.exports()[e.key].size for e in (exports[0], exports[2]))
    evicted = await store.evict(EvictionPolicy(max_age_seconds=None, max_size_bytes=cap))
    assert evicted == [exports[1].key]
    assert sorted(store.exports()) == sorted([exports[0].key, exports[2].key])


async def test_unchanged_dists_are_one_object_across_exports(backend: Backend, tmp_path: Path) -> None:
    # Content versions: the chain keeps the first commit's bytes, monorepo.tools changes each time.
    same = {name: (fake_sha(1), 1) for name in ("monorepo.chain.a", "monorepo.chain.b", "monorepo.chain.c")}
    for n in (1, 2, 3):
        out = tmp_path / f"content-{n}"
        export = write_export(out, fake_sha(n), n, origins=same)
        await backend.store.publish(out / export.key)
    await backend.store.refresh()
    listed = sorted((s.export for s in backend.store.exports().values()), key=lambda e: e.count)
    assert len(listed) == 3
    assert listed[0].dist("monorepo-chain-a") is listed[1].dist("monorepo-chain-a") is listed[2].dist("monorepo-chain-a")
    assert listed[0].dist("monorepo-tools") != listed[1].dist("monorepo-tools")

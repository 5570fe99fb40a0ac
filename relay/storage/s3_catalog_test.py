"""An S3 replica's catalog in its work directory, on a real object store (SeaweedFS): a restart
reads only the manifests that are new or changed since the rows were written, and so does a new
replica, from the catalog the replicas share in the bucket."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from relay.contract import MANIFEST
from relay.storage.catalog import CATALOG, Catalog
from relay.storage.factory import open_store
from relay.storage.s3 import S3Location, S3Store
from relay.contract import DistTable
from relay_testing.exports import fake_sha, write_export


async def _started(s3_url: str, work: Path | None) -> S3Store:
    store = S3Store(S3Location.parse(s3_url), catalog_dir=work)
    await store.start()
    return store


async def _publish(s3_url: str, tmp_path: Path, work: Path, count: int) -> dict[str, tuple[str, ...]]:
    """`count` exports published by a replica with a catalog: key -> its dists' filenames."""
    store = await _started(s3_url, work)
    try:
        for n in range(1, count + 1):
            export = write_export(tmp_path / "out", fake_sha(n), n)
            await store.publish(tmp_path / "out" / export.key)
        return {k: tuple(d.filename for d in s.export.dists) for k, s in store.exports().items()}
    finally:
        await store.close()


async def _restarted(s3_url: str, work: Path) -> tuple[dict[str, tuple[str, ...]], int, S3Store]:
    store = await _started(s3_url, work)
    exports = {k: tuple(d.filename for d in s.export.dists) for k, s in store.exports().items()}
    return exports, store.manifests_read, store


@pytest.mark.asyncio
async def test_a_restart_reads_no_manifest(s3_url: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    published = await _publish(s3_url, tmp_path, work, 4)
    assert len(published) == 4 and (work / CATALOG).is_file()
    exports, read, store = await _restarted(s3_url, work)
    try:
        assert exports == published
        assert read == 0
        # The rows' exports serve as ones read from the bucket: sizes and file names resolve.
        key = fake_sha(4)
        filename = published[key][0]
        assert (await store.read(key, filename))[:2] == b"PK"
        assert store.exports()[key].size > 0
    finally:
        await store.close()
    # A brand-new replica (no catalog) with no shared catalog in the bucket reads them all.
    store = await _started(s3_url, None)
    try:
        await store.bucket.client.delete_object(Bucket=store.location.bucket, Key=store._shared_catalog_key())
    finally:
        await store.close()
    fresh = await _started(s3_url, tmp_path / "other-work")
    try:
        assert fresh.manifests_read == 4 and fresh.exports().keys() == published.keys()
    finally:
        await fresh.close()


@pytest.mark.asyncio
async def test_a_new_replica_starts_from_the_catalog_shared_in_the_bucket(
    s3_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica shares its catalog when it changed (and when it stops); one with an empty work
    directory (a new host, a container started afresh) reads only the manifests written since."""
    published = await _publish(s3_url, tmp_path, tmp_path / "first", 3)
    # A manifest written by a publisher with no catalog after the last share.
    store = await _started(s3_url, None)
    try:
        export = write_export(tmp_path / "out", fake_sha(4), 4)
        await store.publish(tmp_path / "out" / export.key)
        head = await store.bucket.head_or_none(store._shared_catalog_key(), "test")
        assert head is not None
    finally:
        await store.close()
    with caplog.at_level(logging.INFO):
        exports, read, fresh = await _restarted(s3_url, tmp_path / "new")
    try:
        assert read == 1 and set(exports) == {*published, fake_sha(4)}
        assert exports[fake_sha(2)] == published[fake_sha(2)]
        assert any("starting from the catalog shared in the bucket" in r.getMessage() for r in caplog.records)
        # Its rows serve as ones read from the bucket.
        filename = published[fake_sha(3)][0]
        assert (await fresh.read(fake_sha(3), filename))[:2] == b"PK"
    finally:
        await fresh.close()
    # It stopped with one more row than it started from: the shared catalog has all four now.
    exports, read, other = await _restarted(s3_url, tmp_path / "another")
    await other.close()
    assert read == 0 and len(exports) == 4


@pytest.mark.asyncio
async def test_a_damaged_shared_catalog_costs_manifest_reads_only(
    s3_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    published = await _publish(s3_url, tmp_path, tmp_path / "first", 3)
    store = await _started(s3_url, None)
    try:
        await store.bucket.put(store._shared_catalog_key(), b"not a database" * 100, "test")
    finally:
        await store.close()
    with caplog.at_level(logging.WARNING):
        exports, read, fresh = await _restarted(s3_url, tmp_path / "new")
        await fresh.close()
    assert read == 3 and exports == published
    assert any("rebuilding the store's catalog" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_a_manifest_replaced_under_its_key_is_read_again(s3_url: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    await _publish(s3_url, tmp_path, work, 3)
    key = fake_sha(2)
    manifest = json.loads((tmp_path / "out" / key / MANIFEST).read_text())
    store = await _started(s3_url, None)
    try:
        await store.bucket.client.put_object(
            Bucket=store.location.bucket, Key=store._manifest_key(key),
            Body=json.dumps({**manifest, "branches": ["other"]}).encode(),
        )
    finally:
        await store.close()
    _, read, store = await _restarted(s3_url, work)
    try:
        assert read == 1
        assert store.exports()[key].export.branches == ("other",)
    finally:
        await store.close()
    # And recorded: the next restart reads nothing.
    _, read, store = await _restarted(s3_url, work)
    await store.close()
    assert read == 0 and store.exports()[key].export.branches == ("other",)


@pytest.mark.asyncio
async def test_a_deleted_manifest_is_dropped(s3_url: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    await _publish(s3_url, tmp_path, work, 3)
    store = await _started(s3_url, None)
    try:
        await store.bucket.client.delete_object(Bucket=store.location.bucket, Key=store._manifest_key(fake_sha(3)))
    finally:
        await store.close()
    exports, read, store = await _restarted(s3_url, work)
    await store.close()
    assert set(exports) == {fake_sha(1), fake_sha(2)} and read == 0
    catalog = Catalog(work)
    try:
        assert set(catalog.load(DistTable())) == {fake_sha(1), fake_sha(2)}
    finally:
        catalog.close()


@pytest.mark.asyncio
async def test_a_row_whose_files_are_gone_is_not_served(s3_url: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    published = await _publish(s3_url, tmp_path, work, 2)
    key = fake_sha(2)
    store = await _started(s3_url, None)
    try:
        sha256 = store.exports()[key].export.digest(published[key][-1])
        assert sha256 is not None
        await store.bucket.client.delete_object(Bucket=store.location.bucket, Key=store._file_key(sha256[0]))
    finally:
        await store.close()
    exports, read, store = await _restarted(s3_url, work)
    try:
        # Checked as a manifest read from the bucket is: skipped, with the reason.
        assert key not in exports and fake_sha(1) in exports
        assert "listed in the manifest but missing" in store.problems[key]
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_a_damaged_catalog_is_rebuilt_with_one_warning(
    s3_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    work = tmp_path / "work"
    await _publish(s3_url, tmp_path, work, 3)
    (work / CATALOG).write_bytes(b"not a database" * 100)
    with caplog.at_level(logging.WARNING):
        exports, read, store = await _restarted(s3_url, work)
        await store.close()
    assert len(exports) == 3 and read == 3
    assert [r.getMessage() for r in caplog.records if "catalog" in r.getMessage()] == [
        f"rebuilding the store's catalog {work / CATALOG} from the manifests: file is not a database"
    ]
    exports, read, store = await _restarted(s3_url, work)
    await store.close()
    assert len(exports) == 3 and read == 0


@pytest.mark.asyncio
async def test_check_trusts_no_catalog(s3_url: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    await _publish(s3_url, tmp_path, work, 2)
    store = open_store(s3_url, catalog=False, work_dir=work)
    assert isinstance(store, S3Store)
    await store.start()
    await store.close()
    assert store.manifests_read == 2 and len(store.exports()) == 2

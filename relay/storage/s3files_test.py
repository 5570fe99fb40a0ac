"""Files on the object store (issue 20): stored once by content, never lost to an eviction racing a
publish, and never served whole when their bytes differ from the manifest. Against a real SeaweedFS."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.web.app import create_app
from relay.web.keys import Settings
from relay.conftest import s3_client
from relay.contract import Export
from relay.replicas_test import stores  # noqa: F401 (fixture)
from relay.storage.s3 import S3Location, S3Store
from relay_testing.seaweedfs import SeaweedFS
from relay.storage.store import EvictionPolicy, NotListed
from relay_testing.exports import fake_sha, write_export

pytestmark = pytest.mark.asyncio
EVICT_ALL = EvictionPolicy(max_age_seconds=0)


def _objects(seaweedfs: SeaweedFS, location: S3Location, folder: str) -> dict[str, bytes]:
    client = s3_client(seaweedfs)
    found = {}
    listing = client.list_objects_v2(Bucket=location.bucket, Prefix=location.prefix + folder)
    for item in listing.get("Contents", ()):
        found[item["Key"][len(location.prefix + folder):]] = client.get_object(
            Bucket=location.bucket, Key=item["Key"])["Body"].read()
    return found


def _assert_every_manifest_whole(seaweedfs: SeaweedFS, location: S3Location, exports: dict[str, Export]) -> None:
    """Every manifest in the bucket has every file it lists, with the listed bytes."""
    files = _objects(seaweedfs, location, "files/")
    for name in _objects(seaweedfs, location, "manifests/"):
        export = exports[name[: -len(".json")]]
        for filename, (sha256, size) in export.files.items():
            assert sha256 in files, f"lost file: {filename} of {export.key}"
            assert hashlib.sha256(files[sha256]).hexdigest() == sha256 and len(files[sha256]) == size


class PausedPublish(S3Store):
    """A publisher that stops after deciding which files the bucket has, until `go` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decided = asyncio.Event()
        self.go = asyncio.Event()

    async def _upload_files(self, directory: Path, export: Export) -> int:
        written = await super()._upload_files(directory, export)
        if not self.decided.is_set():
            self.decided.set()
            await asyncio.wait_for(self.go.wait(), 60)
        return written


async def test_unchanged_files_are_stored_once(stores: Any, tmp_path: Path, seaweedfs: SeaweedFS) -> None:
    store = await stores()
    first = write_export(tmp_path / "a", fake_sha(1), 1)
    # The same dists under another commit (as content versions leave unchanged wheels).
    second = write_export(tmp_path / "b", fake_sha(1), 1)
    assert await store.upload(tmp_path / "a" / first.key, first) == len(first.files) + 1
    again = tmp_path / "b" / second.key
    renamed = again.with_name(fake_sha(2))
    again.rename(renamed)
    (renamed / "manifest.json").write_text((renamed / "manifest.json").read_text().replace(fake_sha(1), fake_sha(2)))
    from relay.contract import read_export

    moved = read_export(renamed)
    assert await store.upload(renamed, moved) == 1, "only the manifest is written"
    assert len(_objects(seaweedfs, store.location, "files/")) == len(first.files)


async def test_a_file_a_publish_found_is_not_removed_by_an_eviction_round_meanwhile(
    stores: Any, s3_url: str, tmp_path: Path, seaweedfs: SeaweedFS
) -> None:
    export = write_export(tmp_path, fake_sha(1), 1)
    directory = tmp_path / export.key
    first = await stores(grace_seconds=3600)
    await first.publish(directory)
    # Evicted: the manifest goes, its files stay for the grace period.
    assert await first.evict(EVICT_ALL, now=time.time() + 10) == [export.key]
    # Published again: the publisher finds every file there and writes none...
    publisher = PausedPublish(S3Location.parse(s3_url), scan_interval=3600, poll_seconds=0.2)
    await publisher.start()
    try:
        publishing = asyncio.ensure_future(publisher.upload(directory, export))
        await asyncio.wait_for(publisher.decided.wait(), 60)
        # ...and before its manifest is written, an evictor whose grace period is over runs a round.
        late = await stores(grace_seconds=0)
        assert await late.evict(EVICT_ALL) == []
        assert len(_objects(seaweedfs, late.location, "files/")) == len(export.files), "files removed under a publish"
        publisher.go.set()
        assert await publishing == 1
    finally:
        publisher.go.set()
        await publisher.close()
    _assert_every_manifest_whole(seaweedfs, first.location, {export.key: export})
    reader = await stores()
    for filename in export.files:
        assert len(await reader.read(export.key, filename)) == export.files[filename][1]


async def test_interleaved_publish_evict_and_download_lose_nothing(
    stores: Any, tmp_path: Path, seaweedfs: SeaweedFS
) -> None:
    # Three exports sharing most files (one commit's dists under three keys), published again and
    # again by two replicas, evicted with no grace by a third, read by a fourth, all at once.
    base = write_export(tmp_path / "base", fake_sha(1), 1)
    exports: dict[str, Export] = {}
    directories: dict[str, Path] = {}
    from relay.contract import read_export

    for n in (1, 2, 3):
        out = tmp_path / f"e{n}"
        directory = out / fake_sha(n)
        directory.parent.mkdir()
        import shutil

        shutil.copytree(tmp_path / "base" / base.key, directory)
        manifest = directory / "manifest.json"
        manifest.write_text(manifest.read_text().replace(fake_sha(1), fake_sha(n)))
        exports[fake_sha(n)] = read_export(directory)
        directories[fake_sha(n)] = directory
    publishers = [await stores(), await stores()]
    evictor = await stores(grace_seconds=0)
    reader = await stores()
    rng = random.Random(20)
    wrong = 0
    for _ in range(6):  # bounded rounds

        async def publish(store: S3Store) -> None:
            for key in rng.sample(sorted(exports), 2):
                await store.upload(directories[key], exports[key])

        async def evict() -> None:
            for _ in range(2):
                await evictor.evict(EVICT_ALL, now=time.time() + 10)
                await asyncio.sleep(rng.random() / 10)

        async def download() -> None:
            nonlocal wrong
            for _ in range(3):
                await reader.refresh()
                for key, stored in list(reader.exports().items()):
                    for filename, (sha256, _) in stored.export.files.items():
                        try:
                            body = await reader.read(key, filename)
                        except NotListed:
                            continue
                        except Exception:  # noqa: BLE001 - evicted since the listing: fine if so
                            if await reader.find(key) is not None and key in _objects(seaweedfs, reader.location, "manifests/"):
                                raise
                            continue
                        wrong += hashlib.sha256(body).hexdigest() != sha256

        await asyncio.gather(*(publish(p) for p in publishers), evict(), download())
        _assert_every_manifest_whole(seaweedfs, evictor.location, exports)
    assert wrong == 0


async def test_a_tampered_object_never_reaches_a_client_whole(
    s3_url: str, tmp_path: Path, seaweedfs: SeaweedFS, aiohttp_client: Any
) -> None:
    export = write_export(tmp_path, fake_sha(1), 1)
    store = S3Store(S3Location.parse(s3_url), scan_interval=3600)
    await store.connect()  # the application starts and closes it
    await store.publish(tmp_path / export.key)
    dist = export.dists[0]
    body = (tmp_path / export.key / dist.filename).read_bytes()
    tampered = bytes([body[0] ^ 1]) + body[1:]  # same size: only the hash tells
    location = store.location
    s3_client(seaweedfs).put_object(Bucket=location.bucket, Key=f"{location.prefix}files/{dist.sha256}", Body=tampered)
    # No memory cache: the file is streamed from the bucket, not read whole.
    client = await aiohttp_client(create_app(store, settings=Settings(memory_cache_bytes=0)))
    for _ in range(2):
        try:
            response = await client.get(f"/{export.key}/{dist.filename}")
            received = await response.read()
        except aiohttp.ClientPayloadError:
            continue  # cut off before the end: what a client must see
        assert response.status != 200 or hashlib.sha256(received).hexdigest() == dist.sha256, (
            "a client received a whole file that differs from the manifest"
        )


async def test_header_keys_are_written_with_each_manifest_and_go_with_it(
    stores: Any, tmp_path: Path, seaweedfs: SeaweedFS
) -> None:
    """`relay publish` writes a manifest's header in a key under headers/ (relay/storage/header_keys.py,
    bound to the manifest's MD5); the evictor removes those of manifests evicted, and one a publish
    left without its manifest, once older than the grace period."""
    from relay.storage.header_keys import read_header_keys

    store = await stores(grace_seconds=0)
    kept = write_export(tmp_path / "a", fake_sha(1), 1)
    evicted = write_export(tmp_path / "b", fake_sha(2), 2, branches=("release",))
    for export, out in ((kept, tmp_path / "a"), (evicted, tmp_path / "b")):
        await store.publish(out / export.key)
    keys = read_header_keys(list(_objects(seaweedfs, store.location, "headers/")))
    assert set(keys) == {kept.key, evicted.key}
    for export, out in ((kept, tmp_path / "a"), (evicted, tmp_path / "b")):
        manifest = (out / export.key / "manifest.json").read_bytes()
        fields = keys[export.key][hashlib.md5(manifest).hexdigest()]
        assert fields["count"] == export.count and fields["branches"] == list(export.branches)
        assert fields["commit_time"] == export.commit_time and fields["dirty"] is False
    # A publish that wrote its header's key and died before its manifest.
    s3_client(seaweedfs).put_object(
        Bucket=store.location.bucket, Key=f"{store.location.prefix}headers/{fake_sha(3)}.{'0' * 32}.e30", Body=b"{}")
    with store.pin(kept.key):
        assert await store.evict(EVICT_ALL, now=time.time() + 1) == [evicted.key]
    assert set(read_header_keys(list(_objects(seaweedfs, store.location, "headers/")))) == {kept.key}
    assert len(_objects(seaweedfs, store.location, "headers/")) == 1

"""A new S3 replica over a bucket no replica shared a catalog of, on a real object store (SeaweedFS):
its first listing reads the branches' tips and the newest manifests, the rest while it serves."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import relay.storage.s3 as s3_module
from relay.storage.catalog import CATALOG
from relay.storage.factory import open_store
from relay.storage.ranged import RangedReader
from relay.storage.s3 import S3Location, S3Store
from relay.storage.store import StoreUnavailable
from relay_testing.exports import fake_sha, write_export


async def _publish(s3_url: str, tmp_path: Path) -> dict[str, Any]:
    """22 exports of main, an old branch's tip and a tag, published without any catalog."""
    publisher = S3Store(S3Location.parse(s3_url))
    await publisher.start()
    try:
        main = []
        for n in range(1, 21):
            main.append(write_export(tmp_path / "out", fake_sha(n), n))
            await publisher.publish(tmp_path / "out" / main[-1].key)
        release = write_export(tmp_path / "out", fake_sha(100), 3, branches=("release",))
        tagged = write_export(tmp_path / "out", fake_sha(101), 5, tags=("v1",))
        for export in (release, tagged):
            await publisher.publish(tmp_path / "out" / export.key)
    finally:
        await publisher.close()
    return {"main": main, "release": release, "tagged": tagged}


async def _until_read(store: S3Store) -> None:
    deadline = time.monotonic() + 30
    while store.reading and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert store.reading == 0


@pytest.mark.asyncio
async def test_a_new_replica_serves_the_tips_first_and_reads_the_rest_while_serving(
    s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = await _publish(s3_url, tmp_path)
    main, release, tagged = published["main"], published["release"], published["tagged"]
    everything = {e.key for e in [*main, release, tagged]}
    monkeypatch.setattr(s3_module, "FOREGROUND_PARSES", 2)
    gate = asyncio.Event()
    real_fill = S3Store._fill

    queues: list[list[str]] = []

    async def gated_fill(self: S3Store, queue: Any) -> None:
        queues.append([key for key, _ in queue])
        await gate.wait()
        await real_fill(self, queue)

    monkeypatch.setattr(S3Store, "_fill", gated_fill)
    ranged_reads: list[str] = []
    real_read_start = RangedReader.read_start

    async def counted_read_start(self: RangedReader, object_key: str, size: int) -> bytes | None:
        ranged_reads.append(object_key)
        return await real_read_start(self, object_key, size)

    monkeypatch.setattr(RangedReader, "read_start", counted_read_start)
    work = tmp_path / "work"
    store = open_store(s3_url, work_dir=work)
    assert isinstance(store, S3Store) and store.read_tips_first
    await store.start()
    try:
        first = set(store.exports())
        # The tips of main and release: what a first page shows.
        assert first == {main[-1].key, release.key}
        # The rest while serving: the tagged export, then the newest first.
        await asyncio.sleep(0)  # the fill's task starts
        assert queues == [[tagged.key, *(e.key for e in reversed(main[:-1]))]]
        assert store.reading == len(everything) - len(first)
        # Every manifest's header was read by a signed ranged read, none through the client.
        assert sorted(ranged_reads) == sorted(f"{store.location.prefix}manifests/{key}.json" for key in everything)
        read = store.manifests_read
        await store.refresh()  # the next listing leaves the queue alone
        assert store.manifests_read == read and set(store.exports()) == first
        # A commit asked for by its sha is read at once.
        wanted = main[6]
        found = await store.find(wanted.key)
        assert found is not None and found.export == wanted
        assert store.reading == len(everything) - len(first) - 1
        gate.set()
        await _until_read(store)
        assert set(store.exports()) == everything
        assert store.manifests_read == len(everything), "a manifest was read twice"
        await store.refresh()  # what the fill listed stays listed
        assert set(store.exports()) == everything
    finally:
        gate.set()
        await store.close()
    # Everything read went into the catalog: a restart reads no manifest.
    assert (work / CATALOG).is_file()
    restarted = open_store(s3_url, work_dir=work)
    assert isinstance(restarted, S3Store)
    await restarted.start()
    try:
        assert set(restarted.exports()) == everything and restarted.manifests_read == 0
    finally:
        await restarted.close()


@pytest.mark.asyncio
async def test_check_and_stores_without_a_catalog_read_every_manifest_before_listing(
    s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check` trusts no catalog and must see every export: it never leaves manifests for later."""
    published = await _publish(s3_url, tmp_path)
    monkeypatch.setattr(s3_module, "FOREGROUND_PARSES", 2)
    store = open_store(s3_url, catalog=False)
    assert isinstance(store, S3Store) and not store.read_tips_first
    await store.start()
    try:
        assert len(store.exports()) == len(published["main"]) + 2 and store.reading == 0
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_a_first_listing_that_fails_leaves_nothing_queued_and_the_next_one_reads_it(
    s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store goes away while the tips are read: what the listing had left for later goes back
    to the next listing (a queue with no task to read it would hide those exports for good)."""
    published = await _publish(s3_url, tmp_path)
    everything = {e.key for e in [*published["main"], published["release"], published["tagged"]]}
    monkeypatch.setattr(s3_module, "FOREGROUND_PARSES", 2)
    store = open_store(s3_url, work_dir=tmp_path / "work")
    assert isinstance(store, S3Store) and store.read_tips_first
    real_load = S3Store._load
    outage = [True]

    async def load_in_an_outage(self: S3Store, *args: Any, **kwargs: Any) -> Any:
        if outage[0]:
            raise StoreUnavailable("reading a manifest: the store went away")
        return await real_load(self, *args, **kwargs)

    monkeypatch.setattr(S3Store, "_load", load_in_an_outage)
    await store.connect()
    try:
        with pytest.raises(StoreUnavailable):
            await store.refresh()
        assert store.reading == 0 and not store.exports()
        outage[0] = False
        await store.refresh()
        assert published["main"][-1].key in store.exports() and store.reading > 0
        await _until_read(store)
        assert set(store.exports()) == everything
    finally:
        await store.close()

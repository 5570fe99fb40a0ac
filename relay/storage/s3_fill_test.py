"""A new S3 replica over a bucket no replica shared a catalog of, on a real object store (SeaweedFS):
its first listing reads the branches' tips and the newest manifests, the rest while it serves."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

import relay.storage.s3 as s3_module
from relay.storage.catalog import CATALOG
from relay.storage.factory import open_store
from relay.storage.header_keys import key_of, read_header_keys
from relay.storage.ranged import RangedReader
from relay.storage.s3 import S3Location, S3Store
from relay.storage.store import EvictionPolicy, StoreUnavailable
from relay.conftest import s3_client
from relay.contract import Export
from relay_testing.exports import fake_sha, write_export
from relay_testing.seaweedfs import SeaweedFS


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


def _gate_fill(monkeypatch: pytest.MonkeyPatch, queues: list[list[str]] | None = None) -> asyncio.Event:
    """Hold every store's fill (what a first listing left to read while serving) until the event is
    set; each queue's keys, in order, go into `queues`."""
    gate = asyncio.Event()
    real_fill = S3Store._fill

    async def gated_fill(self: S3Store, queue: Any) -> None:
        if queues is not None:
            queues.append([key for key, _ in queue])
        await gate.wait()
        await real_fill(self, queue)

    monkeypatch.setattr(S3Store, "_fill", gated_fill)
    return gate


async def _until_read(store: S3Store) -> None:
    deadline = time.monotonic() + 30
    while store.reading and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert store.reading == 0


def _header_keys(seaweedfs: SeaweedFS, s3_url: str, keep: str, main: list[Export]) -> set[str]:
    """Leave the header keys `relay publish` wrote (`published`), none (`none`: a bucket published by
    an earlier relay), or all but the oldest export's, whose key lies (`lying`: its MD5 is not its
    manifest's, it claims to be main's newest); the exports whose header must be read with a GET."""
    location = S3Location.parse(s3_url)
    client = s3_client(seaweedfs)
    prefix = f"{location.prefix}headers/"
    names = [o["Key"] for o in client.list_objects_v2(Bucket=location.bucket, Prefix=prefix)["Contents"]]
    assert len(names) == 22, "relay publish wrote a header key per export"
    if keep == "published":
        return set()
    oldest = main[0].key
    for name in names:
        if keep == "none" or name.startswith(prefix + oldest + "."):
            client.delete_object(Bucket=location.bucket, Key=name)
    if keep == "none":
        return {key_of(name[len(prefix):]) for name in names}
    claim = {"count": 10**6, "commit_time": "2099-01-01T00:00:00+00:00", "dirty": False, "branches": ["main"], "tags": []}
    token = base64.urlsafe_b64encode(json.dumps(claim).encode()).decode().rstrip("=")
    client.put_object(Bucket=location.bucket, Key=f"{prefix}{oldest}.{'0' * 32}.{token}", Body=b"{}")
    return {oldest}


@pytest.mark.asyncio
@pytest.mark.parametrize("header_keys", ["published", "lying", "none"])
async def test_a_new_replica_serves_the_tips_first_and_reads_the_rest_while_serving(
    s3_url: str, seaweedfs: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, header_keys: str
) -> None:
    published = await _publish(s3_url, tmp_path)
    main, release, tagged = published["main"], published["release"], published["tagged"]
    everything = {e.key for e in [*main, release, tagged]}
    # The manifests whose header is read with a GET: those without a header key that holds.
    unknown = _header_keys(seaweedfs, s3_url, header_keys, main)
    monkeypatch.setattr(s3_module, "FOREGROUND_PARSES", 2)
    queues: list[list[str]] = []
    gate = _gate_fill(monkeypatch, queues)
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
        # The headers the keys under headers/ do not hold were read by signed ranged reads, none
        # through the client; a key that lies about its manifest (another MD5) counted for nothing.
        assert sorted(ranged_reads) == sorted(f"{store.location.prefix}manifests/{key}.json" for key in unknown)
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
        # Each manifest read has its header key now, as `relay publish` writes it: the next new
        # replica over this bucket lists them rather than read a manifest's start.
        names = [o["Key"] for o in s3_client(seaweedfs).list_objects_v2(
            Bucket=store.location.bucket, Prefix=f"{store.location.prefix}headers/")["Contents"]]
        carried = read_header_keys([name[len(f"{store.location.prefix}headers/"):] for name in names])
        assert set(carried) == everything
        for export in [*main, release, tagged]:
            manifest = (tmp_path / "out" / export.key / "manifest.json").read_bytes()
            assert carried[export.key][hashlib.md5(manifest).hexdigest()]["count"] == export.count
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


@pytest.mark.asyncio
async def test_no_files_are_removed_and_no_manifest_is_read_by_the_evictor_while_a_fill_runs(
    s3_url: str, seaweedfs: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the manifests left for later list is known only once they are read: the evictor's round
    at start removes no file meanwhile (and does not GET each of them whole a second time); its
    next round, after the fill, removes what no export lists."""
    published = await _publish(s3_url, tmp_path)
    everything = {e.key for e in [*published["main"], published["release"], published["tagged"]]}
    location = S3Location.parse(s3_url)
    orphan = f"{location.prefix}files/{'0' * 64}"
    s3_client(seaweedfs).put_object(Bucket=location.bucket, Key=orphan, Body=b"listed by no manifest")
    monkeypatch.setattr(s3_module, "FOREGROUND_PARSES", 2)
    gate = _gate_fill(monkeypatch)
    store = S3Store(location, catalog_dir=tmp_path / "work", read_tips_first=True, grace_seconds=0)
    keep_all = EvictionPolicy(max_age_seconds=None)
    await store.start()
    try:
        assert store.reading == len(everything) - 2
        read = store.manifests_read
        whole_reads: list[str] = []
        real_names_in = S3Store._names_in

        async def counted(self: S3Store, object_key: str) -> Any:
            whole_reads.append(object_key)
            return await real_names_in(self, object_key)

        monkeypatch.setattr(S3Store, "_names_in", counted)
        assert await store.evict(keep_all) == []
        assert whole_reads == [] and store.manifests_read == read
        assert s3_client(seaweedfs).head_object(Bucket=location.bucket, Key=orphan)["ContentLength"] > 0
        gate.set()
        await _until_read(store)
        assert await store.evict(keep_all) == []
        assert whole_reads == []  # every manifest is read by now: the evictor reads none again
        with pytest.raises(Exception, match="404|Not Found"):
            s3_client(seaweedfs).head_object(Bucket=location.bucket, Key=orphan)
        assert set(store.exports()) == everything
    finally:
        gate.set()
        await store.close()


@pytest.mark.asyncio
async def test_exports_listed_while_the_evictor_reads_last_use_are_not_evicted_as_never_used(
    s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evictor's round at start reads every replica's last-use records while the fill lists
    exports: one listed meanwhile has no record in what it read, and was judged unused since 1970
    (evicted at once, just published). An export is judged only with its own times."""
    published = await _publish(s3_url, tmp_path)
    everything = {e.key for e in [*published["main"], published["release"], published["tagged"]]}
    monkeypatch.setattr(s3_module, "FOREGROUND_PARSES", 2)
    gate = _gate_fill(monkeypatch)
    real_last_used = S3Store.last_used

    async def fill_meanwhile(self: S3Store, forget_before: float | None = None) -> dict[str, float]:
        used = await real_last_used(self, forget_before)
        gate.set()  # the fill lists every other export while the records are read
        await _until_read(self)
        return used

    monkeypatch.setattr(S3Store, "last_used", fill_meanwhile)
    store = open_store(s3_url, work_dir=tmp_path / "work")
    assert isinstance(store, S3Store)
    await store.start()
    try:
        assert store.reading == len(everything) - 2
        assert await store.evict(EvictionPolicy()) == []  # unused for 30 days: none is
        assert set(store.exports()) == everything
    finally:
        gate.set()
        await store.close()

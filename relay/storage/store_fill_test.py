"""A first start over a store without a catalog: branch tips first, the rest as they are read."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from packaging.version import Version

import relay.storage.store as store_module
from relay.contract import MANIFEST, read_export
from relay.storage.store import DiskStore
from relay.storage.store_test import big_manifest, counted_reads
from relay.index.render import V1_JSON
from relay.web.app import create_app
from relay_testing.exports import fake_sha, write_export

JSON = {"Accept": V1_JSON}


@pytest.fixture
def gated_background(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, list[str]]]:
    """The store's own thread waits at each manifest until the event is set; the keys it read, in order."""
    gate = threading.Event()
    read_in_background: list[str] = []
    real_read = store_module.read_export

    def gated_read(directory: Path, *args):  # type: ignore[no-untyped-def]
        if threading.current_thread().name.startswith("relay-store-parse"):
            assert gate.wait(30), "the test never opened the gate"
            read_in_background.append(directory.name)
        return real_read(directory, *args)

    monkeypatch.setattr(store_module, "read_export", gated_read)
    monkeypatch.setattr(store_module, "FOREGROUND_PARSES", 2)
    yield gate, read_in_background
    gate.set()


def _wait_until_read(store: DiskStore) -> None:
    deadline = time.monotonic() + 30
    while store.reading and time.monotonic() < deadline:
        time.sleep(0.02)
        store.exports()
    store.exports()
    assert store.reading == 0


@pytest.mark.asyncio
async def test_a_first_start_lists_branch_tips_first_and_the_rest_as_they_are_read(
    store_dir: Path, gated_background: tuple[threading.Event, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, read_in_background = gated_background
    main = [write_export(store_dir, fake_sha(n), n) for n in range(1, 21)]
    # An old branch whose tip is older than most of main, and a tag on an old commit of main.
    release = write_export(store_dir, fake_sha(100), 3, branches=("release",))
    tagged = write_export(store_dir, fake_sha(101), 5, tags=("v1",))
    dirty = write_export(store_dir, fake_sha(102), 30, dirty=True)  # never a branch's tip
    everything = {e.key for e in [*main, release, tagged, dirty]}
    store = DiskStore(store_dir, scan_interval=0, background_parse_bytes=1 << 20)
    try:
        # The first listing: the tip of every branch and the newest FOREGROUND_PARSES (2), no more.
        first = set(store.exports())
        assert {main[-1].key, release.key} <= first
        assert first <= {main[-1].key, main[-2].key, release.key, dirty.key}
        assert store.reading == len(everything) - len(first)
        # A commit asked for by its sha is read at once, not after the queue before it.
        wanted = main[6]
        assert wanted.key not in first
        found = await store.find(wanted.key)
        assert found is not None and found.export == wanted
        assert read_in_background == []  # the store's thread is still held at its first manifest
        gate.set()
        _wait_until_read(store)
        assert set(store.exports()) == everything
        # The store's thread read the tagged export first, then newest first; none of them twice.
        assert read_in_background[0] == tagged.key
        counts = [store.exports()[k].export.count for k in read_in_background[1:]]
        assert counts == sorted(counts, reverse=True)
        assert wanted.key not in read_in_background and len(set(read_in_background)) == len(read_in_background)
    finally:
        store.close_parser()
    # Everything read went into the catalog: a restart reads no manifest.
    reads = counted_reads(monkeypatch)
    restarted = DiskStore(store_dir, scan_interval=0, background_parse_bytes=1 << 20)
    try:
        assert set(restarted.exports()) == everything and restarted.reading == 0
        assert reads == []
    finally:
        restarted.close_parser()


def test_scans_while_the_store_reads_make_no_system_call_per_queued_export(
    store_dir: Path, gated_background: tuple[threading.Event, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each system call a request's scan makes waits for the store's thread to let go of the GIL (a
    first start at 1,500 exports served its first page after 42 s so): the scans leave the queued
    exports alone, and the store's thread lists what it read."""
    gate, _ = gated_background
    exports = [write_export(store_dir, fake_sha(n), n) for n in range(1, 21)]
    store = DiskStore(store_dir, scan_interval=0, background_parse_bytes=1 << 20)
    loaded: list[str] = []
    real_load = DiskStore._load

    def spying_load(self: DiskStore, entry: os.DirEntry[str], *args: Any) -> Any:
        loaded.append(entry.name)
        return real_load(self, entry, *args)

    try:
        first = set(store.exports())
        monkeypatch.setattr(DiskStore, "_load", spying_load)
        for _ in range(5):
            store.exports()
            store.rescan()
        assert loaded and set(loaded) <= first, "a scan looked at an export still queued"
        gate.set()
        _wait_until_read(store)
        assert set(store.exports()) == {e.key for e in exports}
    finally:
        store.close_parser()


def test_a_large_tip_is_read_in_the_first_listing_and_large_others_on_the_stores_thread(
    store_dir: Path, gated_background: tuple[threading.Event, list[str]]
) -> None:
    """Manifests over `background_parse_bytes` (a monorepo of 10,000 dists) are read on the store's
    thread, but for a branch's tip: without it the branch would have no export to serve."""
    gate, _ = gated_background
    exports = [write_export(store_dir, fake_sha(n), n) for n in range(1, 21)]
    for export in exports[-3:]:
        big_manifest(store_dir / export.key, valid=True)  # padded after the dists: 4.5 MB
    store = DiskStore(store_dir, scan_interval=0, background_parse_bytes=1 << 20)
    try:
        first = set(store.exports())
        assert exports[-1].key in first and not first & {exports[-2].key, exports[-3].key}
        gate.set()
        _wait_until_read(store)
        assert set(store.exports()) == {e.key for e in exports}
    finally:
        store.close_parser()


def test_a_manifest_whose_header_cannot_be_read_alone_is_read_in_the_first_listing(
    store_dir: Path, gated_background: tuple[threading.Event, list[str]]
) -> None:
    """Another writer of the contract may put `dists` first: no order can be told for such a manifest
    before it is read whole, so the first listing reads it (it could be a branch's tip)."""
    gate, _ = gated_background
    exports = [write_export(store_dir, fake_sha(n), n) for n in range(1, 11)]
    tip = write_export(store_dir, fake_sha(50), 50, branches=("other",))
    manifest = store_dir / tip.key / MANIFEST
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({"dists": data.pop("dists"), **data}))
    store = DiskStore(store_dir, scan_interval=0, background_parse_bytes=1 << 20)
    try:
        assert tip.key in store.exports()
        assert store.reading == len(exports) + 1 - len(store.exports())
        gate.set()
        _wait_until_read(store)
        assert len(store.exports()) == len(exports) + 1
    finally:
        store.close_parser()


def test_a_bad_manifest_read_in_the_background_is_reported_once_and_left_out(
    store_dir: Path, gated_background: tuple[threading.Event, list[str]]
) -> None:
    gate, _ = gated_background
    exports = [write_export(store_dir, fake_sha(n), n) for n in range(1, 11)]
    bad = exports[2]
    (store_dir / bad.key / bad.dists[0].filename).unlink()
    manifest = store_dir / exports[3].key / MANIFEST
    data = json.loads(manifest.read_text())
    data["dists"][0]["requires_dist"] = [7]
    manifest.write_text(json.dumps(data))
    store = DiskStore(store_dir, scan_interval=0, background_parse_bytes=1 << 20)
    try:
        store.exports()
        gate.set()
        _wait_until_read(store)
        assert set(store.exports()) == {e.key for e in exports} - {bad.key, exports[3].key}
        assert "missing" in store.problems[bad.key]
        assert "'requires_dist' must be a list of strings" in store.problems[exports[3].key]
        assert read_export(store_dir / exports[0].key) == store.exports()[exports[0].key].export
    finally:
        store.close_parser()


def test_a_small_store_is_read_whole_by_its_first_listing(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "FOREGROUND_PARSES", 16)
    exports = [write_export(store_dir, fake_sha(n), n) for n in range(1, 17)]
    store = DiskStore(store_dir, scan_interval=0, background_parse_bytes=1 << 20)
    try:
        assert set(store.exports()) == {e.key for e in exports} and store.reading == 0
    finally:
        store.close_parser()


@pytest.mark.asyncio
async def test_the_relay_serves_a_branch_at_its_tip_while_the_rest_is_read(
    aiohttp_client: Any, store_dir: Path, gated_background: tuple[threading.Event, list[str]]
) -> None:
    gate, _ = gated_background
    main = [write_export(store_dir, fake_sha(n), n) for n in range(1, 21)]
    store = DiskStore(store_dir, scan_interval=0, background_parse_bytes=1 << 20)
    client = await aiohttp_client(create_app(store))
    page = await client.get("/main/simple/monorepo-tools/", headers=JSON)
    assert page.status == 200
    versions = (await page.json(content_type=None))["versions"]
    assert versions[-1] == main[-1].version and len(versions) < len(main)
    health = await (await client.get("/-/health")).json()
    assert health["reading"] == len(main) - health["exports"] > 0
    # An older commit by its sha: read on demand, not after the queue.
    assert (await client.get(f"/{main[3].sha}/simple/monorepo-tools/")).status == 200
    gate.set()
    _wait_until_read(store)
    page = await client.get("/main/simple/monorepo-tools/", headers=JSON)
    assert (await page.json(content_type=None))["versions"] == sorted((e.version for e in main), key=Version)
    assert (await (await client.get("/-/health")).json())["reading"] == 0

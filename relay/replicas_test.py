"""Several relays (replicas) on one bucket: one build per commit, leases, eviction across replicas."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
import pytest_asyncio  # pants: no-infer-dep (installed with pytest-aiohttp, the [pytest] tool)

from relay.web.app import Settings, create_app
from relay.conftest import s3_client
from relay.storage.leases import Lease
from relay.building.materialize import Limits, Materializer
from relay.building import materialize_test
from relay.building.materialize_test import fake_command, git
from relay.index.refs import Git, Refs
from relay.storage.s3 import S3Location, S3Store
from relay_testing.seaweedfs import SeaweedFS
from relay.storage.store import EvictionPolicy
from relay_testing.exports import fake_sha, write_export

pytestmark = pytest.mark.asyncio

repo = materialize_test.repo  # the same fixture: a small git repository with three commits
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
DAY = 86400.0


@pytest_asyncio.fixture
async def stores(s3_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Make S3Stores on the test's prefix (started); all are closed at the end."""
    made: list[S3Store] = []

    async def make(**kwargs: Any) -> S3Store:
        store = S3Store(S3Location.parse(s3_url), scan_interval=3600, poll_seconds=0.2, **kwargs)
        await store.start()
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def test_ten_first_requests_over_three_replicas_build_once(
    s3_url: str, repo: Path, tmp_path: Path, aiohttp_client: Any
) -> None:
    runs = tmp_path / "runs"
    clients = []
    for n in range(3):
        store = S3Store(S3Location.parse(s3_url), poll_seconds=0.2)
        work = tmp_path / f"work-{n}"
        work.mkdir()
        materializer = Materializer(
            Git(repo), store, fake_command(runs, "--sleep 1"), Limits(timeout_seconds=60), work_dir=work
        )
        refs = Refs(store, Git(repo), materializer, refresh_interval=3600)
        clients.append(await aiohttp_client(create_app(store, refs, Settings(), builds=materializer)))
    head = git(repo, "rev-parse", "HEAD")
    responses = await asyncio.gather(
        *(clients[i % 3].get(f"/{head}/simple/monorepo-chain-a/", headers=JSON) for i in range(10))
    )
    assert [r.status for r in responses] == [200] * 10
    assert runs.read_text().splitlines() == ["run"]
    for client in clients:
        assert (await client.get(f"/{head}/simple/monorepo-chain-b/", headers=JSON)).status == 200
    assert runs.read_text().splitlines() == ["run"]


async def test_a_lease_has_one_holder_and_is_taken_over_after_it_expires(stores: Any) -> None:
    a, b = await stores(), await stores()
    held = Lease(a, "build-x", seconds=1.0)
    assert await held.acquire()
    other = Lease(b, "build-x", seconds=1.0)
    assert not await other.acquire()
    assert await held.renew()
    # The holder stops renewing (it died): after the lease period, another replica takes over.
    for _ in range(50):
        if await other.acquire():
            break
        await asyncio.sleep(0.1)
    assert other.held
    assert not await held.renew()
    assert not await Lease(a, "build-x", seconds=1.0).acquire()
    await other.release()
    assert await Lease(a, "build-x", seconds=1.0).acquire()


async def test_one_evictor_at_a_time(stores: Any, tmp_path: Path) -> None:
    a, b = await stores(), await stores()
    export = write_export(tmp_path, fake_sha(1), 1)
    await a.publish(tmp_path / export.key)
    await b.refresh()
    old = EvictionPolicy(max_age_seconds=DAY)
    evictor = Lease(a, "evictor", seconds=60)
    assert await evictor.acquire()
    assert await b.evict(old, now=time.time() + 2 * DAY) == []
    await evictor.release()
    assert await b.evict(old, now=time.time() + 2 * DAY) == [export.key]


async def test_last_use_is_shared_in_batches(stores: Any, tmp_path: Path) -> None:
    a, b = await stores(), await stores()
    export = write_export(tmp_path, fake_sha(1), 1)
    await a.publish(tmp_path / export.key)
    await b.refresh()
    published = (await b.last_used())[export.key]
    await asyncio.sleep(1.1)
    a.touch(export.key)
    # Touching writes nothing; the batch is written by flush_last_use (once a minute in a relay).
    assert (await b.last_used())[export.key] == published
    await a.flush_last_use()
    assert (await b.last_used())[export.key] > published


async def test_eviction_during_a_download_on_another_replica(
    stores: Any, tmp_path: Path, seaweedfs: SeaweedFS
) -> None:
    serving, evicting = await stores(), await stores(grace_seconds=3600)
    export = write_export(tmp_path, fake_sha(1), 1)
    await serving.publish(tmp_path / export.key)
    await evicting.refresh()
    dist = export.dists[0]
    async with serving.open(export.key, dist.filename) as blob:
        evicted = await evicting.evict(EvictionPolicy(max_age_seconds=DAY), now=time.time() + 2 * DAY)
        assert evicted == [export.key]
        body = b"".join([chunk async for chunk in blob.chunks])
    assert len(body) == dist.size
    # Files outlive the manifest by the grace period: a replica that still lists the export serves it.
    assert len(await serving.read(export.key, dist.filename)) == dist.size
    await serving.refresh()
    assert export.key not in serving.exports()
    # After the grace period, the next round removes the files.
    later = await stores(grace_seconds=0)
    assert await later.evict(EvictionPolicy(max_age_seconds=DAY)) == []
    location = serving.location
    listing = s3_client(seaweedfs).list_objects_v2(Bucket=location.bucket, Prefix=location.prefix + "files/")
    assert listing.get("KeyCount", 0) == 0


async def test_a_new_export_is_served_on_its_first_request(
    s3_url: str, stores: Any, tmp_path: Path, aiohttp_client: Any
) -> None:
    replica = S3Store(S3Location.parse(s3_url), scan_interval=3600)
    client = await aiohttp_client(create_app(replica))
    publisher = await stores()
    export = write_export(tmp_path, fake_sha(1), 1)
    await publisher.publish(tmp_path / export.key)
    # The replica lists manifests only every hour here: the request itself finds the new export.
    response = await client.get(f"/{export.key}/simple/monorepo-chain-a/", headers=JSON)
    assert response.status == 200
    assert (await client.get(f"/{fake_sha(2)}/simple/", headers=JSON)).status == 404


async def test_last_use_records_of_replicas_gone_long_ago_are_removed(
    stores: Any, tmp_path: Path, seaweedfs: SeaweedFS
) -> None:
    a, b = await stores(), await stores()
    export = write_export(tmp_path, fake_sha(1), 1)
    await a.publish(tmp_path / export.key)
    a.touch(export.key)
    await a.flush_last_use()
    location = a.location
    listing = s3_client(seaweedfs).list_objects_v2(Bucket=location.bucket, Prefix=location.prefix + "used/")
    assert listing["KeyCount"] == 1
    await b.last_used(forget_before=time.time() - 3600)
    assert s3_client(seaweedfs).list_objects_v2(Bucket=location.bucket, Prefix=location.prefix + "used/")["KeyCount"] == 1
    # As if a's record had not been written for longer than the eviction age.
    await b.last_used(forget_before=time.time() + 60)
    assert s3_client(seaweedfs).list_objects_v2(Bucket=location.bucket, Prefix=location.prefix + "used/")["KeyCount"] == 0

"""The S3 store on a real object store (SeaweedFS): start-up checks, publishing, serving, outages."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from relay import cli
from relay.web.app import create_app
from relay.web.keys import Settings
from relay.contract import MANIFEST
from relay.storage.s3 import S3Location, S3Store, listing_interval
from relay_testing.seaweedfs import SeaweedFS
from relay.storage.store import PublishConflict, StoreConfigError
from relay_testing.exports import fake_sha, write_export

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.asyncio
async def test_start_up_names_an_unreachable_store(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(StoreConfigError, match="cannot be reached.*AWS_ENDPOINT_URL"):
        await S3Store(S3Location.parse(s3_url), timeout_seconds=2).connect()


@pytest.mark.asyncio
async def test_start_up_names_wrong_credentials(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(StoreConfigError, match="refused the credentials.*AWS_SECRET_ACCESS_KEY"):
        await S3Store(S3Location.parse(s3_url)).connect()


@pytest.mark.asyncio
async def test_start_up_names_a_missing_bucket(s3_url: str) -> None:
    # The fix names the bucket itself (was a raw `{self.location.bucket}`).
    with pytest.raises(StoreConfigError, match=r"bucket 'relay-no-such-bucket' does not exist.*`aws s3 mb s3://relay-no-such-bucket`"):
        await S3Store(S3Location.parse("s3://relay-no-such-bucket/x")).connect()


@pytest.mark.asyncio
async def test_start_up_refuses_a_store_without_conditional_writes(
    s3_url: str, monkeypatch: pytest.MonkeyPatch, aiohttp_server: Any
) -> None:
    # A store that accepts every write, If-None-Match or not (as some S3 clones do).
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200, headers={"ETag": '"0"'})

    async def deleted(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("HEAD", "/{bucket}", ok)
    app.router.add_put("/{bucket}/{key:.*}", ok)
    app.router.add_delete("/{bucket}/{key:.*}", deleted)
    server = await aiohttp_server(app)
    monkeypatch.setenv("AWS_ENDPOINT_URL", str(server.make_url("")).rstrip("/"))
    with pytest.raises(StoreConfigError, match="ignores conditional writes"):
        await S3Store(S3Location.parse("s3://lenient/x")).connect()


@pytest.mark.asyncio
async def test_a_store_checked_by_serve_is_not_checked_again_when_it_starts(s3_url: str) -> None:
    """`serve` checks the store (credentials, bucket, conditional writes) before it serves, then
    starts it: the start makes none of the check's requests again; a store never checked does."""
    checks: list[str] = []

    def counting(store: S3Store) -> S3Store:
        check = store._check

        async def counted() -> None:
            checks.append(store.replica)
            await check()

        store._check = counted  # type: ignore[method-assign]
        return store

    checked = counting(S3Store(S3Location.parse(s3_url)))
    await checked.check()
    await checked.start()
    try:
        assert checks == [checked.replica]
        assert checked.exports() == {}
    finally:
        await checked.close()
    fresh = counting(S3Store(S3Location.parse(s3_url)))
    await fresh.start()
    await fresh.close()
    assert checks == [checked.replica, fresh.replica]


@pytest.mark.parametrize("url", ["s3://", "s3://A_B/x", "s3://bucket/a//b", "s3://bucket/../x", "gs://bucket"])
def test_bad_store_urls(url: str) -> None:
    with pytest.raises(StoreConfigError):
        S3Location.parse(url)


@pytest.mark.asyncio
async def test_publishing_different_bytes_for_a_commit_is_an_error(s3_url: str, tmp_path: Path) -> None:
    export = write_export(tmp_path, fake_sha(1), 1)
    directory = tmp_path / export.key
    store = S3Store(S3Location.parse(s3_url))
    await store.start()
    try:
        await store.publish(directory)
        manifest = directory / MANIFEST
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "branches": ["other"]}))
        with pytest.raises(PublishConflict, match="different bytes"):
            await store.publish(directory)
        assert store.exports()[export.key].export.branches == ("main",)
    finally:
        await store.close()


def test_relay_publish_command(s3_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = write_export(tmp_path, fake_sha(1), 1)
    directory = tmp_path / export.key
    assert cli.main(["publish", str(directory), "--store", s3_url]) == 0
    assert f"published {export.key}" in capsys.readouterr().out
    # Again (a retried CI job): a no-op.
    assert cli.main(["publish", str(directory), "--store", s3_url]) == 0
    assert "nothing new" in capsys.readouterr().out
    # The same commit with other bytes: refused, the first stays.
    wheel = directory / export.dists[0].filename
    wheel.write_bytes(wheel.read_bytes()[::-1])
    (directory / MANIFEST).write_text(
        (directory / MANIFEST).read_text().replace(export.dists[0].sha256, hashlib.sha256(wheel.read_bytes()).hexdigest())
    )
    assert cli.main(["publish", str(directory), "--store", s3_url]) == 1
    assert "different bytes" in capsys.readouterr().err
    # And to a directory store.
    store_dir = tmp_path / "disk"
    shutil.rmtree(directory)
    write_export(tmp_path, fake_sha(2), 2)
    assert cli.main(["publish", str(tmp_path / fake_sha(2)), "--store", str(store_dir)]) == 0
    assert (store_dir / fake_sha(2) / MANIFEST).is_file()


@pytest.mark.asyncio
@pytest.mark.parametrize("memory_cache", [0, 128 * 1024 * 1024])
async def test_serves_pages_and_files_from_the_bucket(
    s3_url: str, tmp_path: Path, aiohttp_client: Any, memory_cache: int
) -> None:
    export = write_export(tmp_path, fake_sha(1), 1)
    store = S3Store(S3Location.parse(s3_url))
    await store.start()
    await store.publish(tmp_path / export.key)
    await store.close()
    client = await aiohttp_client(create_app(S3Store(S3Location.parse(s3_url)), settings=Settings(memory_cache_bytes=memory_cache)))
    page = await client.get("/main/simple/monorepo-chain-a/", headers=JSON)
    assert page.status == 200
    files = (await page.json())["files"]
    dist = export.dist("monorepo-chain-a")
    assert dist is not None
    for _ in range(2):
        response = await client.get(f"/{export.key}/{dist.filename}")
        assert response.status == 200
        assert response.headers["ETag"] == f'"{dist.sha256}"'
        assert hashlib.sha256(await response.read()).hexdigest() == dist.sha256
    assert files[0]["hashes"]["sha256"] == dist.sha256


@pytest.mark.asyncio
async def test_redirects_to_a_presigned_url(s3_url: str, tmp_path: Path, aiohttp_client: Any) -> None:
    export = write_export(tmp_path, fake_sha(1), 1)
    store = S3Store(S3Location.parse(s3_url))
    client = await aiohttp_client(create_app(store, settings=Settings(memory_cache_bytes=0, redirect_files=True)))
    await store.publish(tmp_path / export.key)
    dist = export.dists[0]
    response = await client.get(f"/{export.key}/{dist.filename}", allow_redirects=False)
    assert response.status == 302
    async with aiohttp.ClientSession() as session:
        async with session.get(response.headers["Location"]) as direct:
            assert direct.status == 200
            assert hashlib.sha256(await direct.read()).hexdigest() == dist.sha256


@pytest.mark.asyncio
async def test_an_outage_answers_503_and_recovers(
    tmp_path: Path, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relay.conftest import s3_client

    server = SeaweedFS(tmp_path / "seaweedfs" / "data")
    server.start()
    try:
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        s3_client(server).create_bucket(Bucket="outage")
        export = write_export(tmp_path, fake_sha(1), 1)
        store = S3Store(S3Location.parse("s3://outage/x"), timeout_seconds=3)
        client = await aiohttp_client(create_app(store, settings=Settings(memory_cache_bytes=0)))
        await store.publish(tmp_path / export.key)
        dist = export.dists[0]
        assert (await client.get(f"/{export.key}/{dist.filename}")).status == 200
        server.stop()
        down = await client.get(f"/{export.key}/{dist.filename}")
        assert down.status == 503
        assert "unavailable" in await down.text()
        # Pages come from the manifests in memory: still served.
        assert (await client.get("/main/simple/", headers=JSON)).status == 200
        server.start()
        # The store comes back in parts (gateway, filer, volumes): 503 until it serves, then 200.
        statuses = []
        for _ in range(120):
            back = await client.get(f"/{export.key}/{dist.filename}")
            statuses.append(back.status)
            if back.status == 200:
                break
            await asyncio.sleep(0.5)
        assert set(statuses[:-1]) <= {503} and statuses[-1] == 200
        assert hashlib.sha256(await back.read()).hexdigest() == dist.sha256
    finally:
        server.stop()


@pytest.mark.asyncio
async def test_an_interrupted_publish_writes_only_what_is_missing(
    s3_url: str, tmp_path: Path, seaweedfs: SeaweedFS
) -> None:
    from relay.conftest import s3_client

    export = write_export(tmp_path, fake_sha(1), 1)
    directory = tmp_path / export.key
    location = S3Location.parse(s3_url)
    # A publish that died after two files: they are there, the manifest is not.
    for name in sorted(export.filenames)[:2]:
        digest = export.digest(name)
        assert digest is not None
        s3_client(seaweedfs).put_object(
            Bucket=location.bucket, Key=f"{location.prefix}files/{digest[0]}",
            Body=(directory / name).read_bytes(),
        )
    store = S3Store(location)
    await store.start()
    try:
        assert await store.upload(directory, export) == len(export.filenames) - 2 + 1
        assert await store.upload(directory, export) == 0
        await store.refresh()
        assert list(store.exports()) == [export.key]
    finally:
        await store.close()


def test_serve_stops_at_start_up_with_the_fix(s3_url: str) -> None:
    with pytest.raises(SystemExit, match="bucket 'relay-no-such-bucket' does not exist.*create it"):
        cli.main(["serve", "--store", "s3://relay-no-such-bucket/x", "--port", "0"])


def test_check_lists_a_bucket(s3_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = write_export(tmp_path, fake_sha(1), 1)
    assert cli.main(["publish", str(tmp_path / export.key), "--store", s3_url]) == 0
    assert cli.main(["check", s3_url]) == 0
    assert f"ok    {export.key}" in capsys.readouterr().out


def test_the_listing_interval_bounds_list_requests_per_second() -> None:
    assert listing_interval(5.0, 1) == 5.0
    assert listing_interval(5.0, 2) == 5.0  # 1,500 exports: two pages every 5 s
    assert listing_interval(5.0, 20) == 20.0  # 20,000 exports: one page a second on average
    assert listing_interval(0.5, 1) == 0.5  # one page: as configured
    assert listing_interval(0.5, 3) == 3.0


@pytest.mark.parametrize("value", [
    "2026-12-06T15:23:55.123Z",  # how S3 (and SeaweedFS) list an object's LastModified
    "2026-12-06T15:23:55Z",
    "2026-12-06T15:23:55.123456Z",
    "2026-12-06T15:23:55+02:00",
    "Sun, 06 Dec 2026 15:23:55 GMT",  # a HEAD's Last-Modified header
    "2026-12-06T15:23:55",  # no zone: botocore's own reading
    "1765000000",
    1765000000,
])
def test_timestamps_read_as_botocore_reads_them(value: object) -> None:
    from botocore.utils import parse_timestamp

    from relay.storage.s3 import _timestamp

    ours, botocores = _timestamp(value), parse_timestamp(value)
    assert (ours, ours.tzinfo is None, ours.timestamp()) == (botocores, botocores.tzinfo is None, botocores.timestamp())


def test_the_client_reads_timestamps_with_the_fast_parser() -> None:
    from relay.storage.s3 import _session, _timestamp

    parser = _session().get_component("response_parser_factory").create_parser("rest-xml")
    assert parser._timestamp_parser is _timestamp

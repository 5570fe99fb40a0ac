"""Ranged reads signed by botocore's signer and sent by aiohttp, against a real object store (SeaweedFS):
the same bytes as the client's, and the client again where the store refuses them."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from relay.storage.ranged import RangedReader, Unanswered
from relay.conftest import s3_client
from relay.storage.s3 import S3Location, S3Store
from relay_testing.seaweedfs import SeaweedFS


async def _put(store: S3Store, objects: dict[str, bytes]) -> None:
    # By the store's client: after an empty PUT from botocore's synchronous client, SeaweedFS's answer
    # to the next request on that connection cannot be parsed (a 60 s read timeout, then a retry).
    for name, body in objects.items():
        await store.bucket.put(store.bucket.key(name), body, "test")


@pytest.mark.asyncio
async def test_ranged_reads_answer_as_the_client_does(s3_url: str) -> None:
    location = S3Location.parse(s3_url)
    body = bytes(range(256)) * 40  # 10,240 bytes
    store = S3Store(location, read_tips_first=True)
    await store.connect()
    try:
        await _put(store, {"manifests/long.json": body, "manifests/short.json": b'{"a": 1}',
                           "manifests/empty.json": b"", "manifests/v1.0+local~1.json": b"spaced"})
        bucket = store.bucket
        assert bucket.ranged is not None, "the store made no ranged reader"
        for name, size in [("long.json", 4096), ("long.json", 65536), ("short.json", 4096),
                           ("empty.json", 4096), ("missing.json", 4096), ("v1.0+local~1.json", 3)]:
            key = bucket.key(f"manifests/{name}")
            by_client = await bucket.get_or_none(key, "test", Range=f"bytes=0-{size - 1}")
            ranged = await bucket.ranged.read_start(key, size)
            assert ranged == (None if by_client is None else by_client[0]), name
        assert await bucket.ranged.read_start(bucket.key("manifests/long.json"), 4096) == body[:4096]
        assert await bucket.ranged.read_start(bucket.key("manifests/empty.json"), 4096) is None
    finally:
        await store.close()
    assert store.bucket.ranged is None


@pytest.mark.asyncio
async def test_a_refused_ranged_read_is_read_by_the_client_and_the_bucket_stops_using_them(
    s3_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    location = S3Location.parse(s3_url)
    store = S3Store(location, read_tips_first=True)
    await store.connect()
    try:
        await _put(store, {"manifests/one.json": b'{"count": 1}'})
        bucket = store.bucket
        ranged = bucket.ranged
        assert ranged is not None
        # Signed with a secret the store does not know: a 403, as a store that wants another
        # signature or addressing would answer.
        good = ranged._credentials
        ranged._credentials = type(good)(good.access_key, "not-the-secret", good.token)
        with pytest.raises(Unanswered) as refused:
            await ranged.read_start(bucket.key("manifests/one.json"), 4096)
        assert refused.value.refused
        with caplog.at_level(logging.WARNING, logger="relay.s3store"):
            assert await bucket.get_start(bucket.key("manifests/one.json"), 4096, "test") == b'{"count": 1}'
        assert bucket.ranged is None
        assert "reading through the S3 client from now on" in caplog.text
        assert await bucket.get_start(bucket.key("manifests/one.json"), 5, "test") == b'{"cou'
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_no_ranged_reader_where_the_client_goes_through_a_configured_proxy(s3_url: str) -> None:
    """Proxies set in the client's configuration are the client's alone: its reads stay with it."""
    from aiobotocore.config import AioConfig  # pants: no-infer-dep (the relay's requirement)
    from aiobotocore.session import get_session  # pants: no-infer-dep

    session = get_session()
    bucket = S3Location.parse(s3_url).bucket
    async with session.create_client("s3", config=AioConfig(proxies={"https": "http://127.0.0.1:9"})) as proxied:
        assert await RangedReader.open(session, proxied, bucket, 1.0) is None
    async with session.create_client("s3") as direct:
        reader = await RangedReader.open(session, direct, bucket, 1.0)
        assert reader is not None
        await reader.close()


@pytest.mark.asyncio
async def test_ranged_reads_go_through_the_proxy_the_environment_names(
    s3_url: str, seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """http_proxy and no_proxy as botocore reads them for the client: the reads go through the proxy
    (with its credentials from the URL) unless no_proxy exempts the endpoint."""
    from aiobotocore.session import get_session  # pants: no-infer-dep (the relay's requirement)

    location = S3Location.parse(s3_url)
    key = f"{location.prefix}manifests/one.json"
    s3_client(seaweedfs).put_object(Bucket=location.bucket, Key=key, Body=b'{"count": 1}')
    heads: list[str] = []

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # One request, forwarded in origin form with the proxy's own headers dropped, then closed.
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        heads.append(head)
        line, _, fields = head.partition("\r\n")
        method, target, version = line.split(" ")
        url = urlsplit(target)
        kept = [f for f in fields.split("\r\n") if f and not f.lower().startswith(("proxy-", "connection:"))]
        upstream_reader, upstream = await asyncio.open_connection(url.hostname, url.port)
        upstream.write(f"{method} {url.path}?{url.query} {version}\r\n".encode("latin-1")
                       + "\r\n".join([*kept, "Connection: close", "", ""]).encode("latin-1"))
        writer.write(await upstream_reader.read())
        await writer.drain()
        upstream.close()
        writer.close()

    proxy = await asyncio.start_server(forward, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://relay:s%40cret@127.0.0.1:{port}")
    session = get_session()

    async def read_start(size: int) -> bytes | None:
        # A client made now: it reads the environment's proxy settings when it is made, as the reader.
        async with session.create_client("s3") as client:
            reader = await RangedReader.open(session, client, location.bucket, 5.0)
            assert reader is not None
            try:
                return await reader.read_start(key, size)
            finally:
                await reader.close()

    try:
        assert await read_start(4096) == b'{"count": 1}'
        assert len(heads) == 1
        request_line, *fields = heads[0].split("\r\n")
        assert request_line.startswith(f"GET {seaweedfs.env['AWS_ENDPOINT_URL']}/{location.bucket}/{key} ")
        assert f"Proxy-Authorization: Basic {base64.b64encode(b'relay:s@cret').decode()}" in fields
        assert any(f.startswith("Authorization: AWS4-HMAC-SHA256 ") for f in fields)

        monkeypatch.setenv("no_proxy", "127.0.0.1")
        assert await read_start(5) == b'{"cou'
        assert len(heads) == 1, "no_proxy names the endpoint: the read went around the proxy"
    finally:
        proxy.close()
        await proxy.wait_closed()


@pytest.mark.asyncio
async def test_what_is_a_refusal_and_what_is_the_stores_trouble(aiohttp_server: Any) -> None:
    """A redirect or a 4xx stops the signed reads for the bucket; a 5xx is read again by the client,
    which retries it, and the signed reads go on."""
    from aiohttp import web
    from botocore.credentials import Credentials  # pants: no-infer-dep (comes with aiobotocore)

    answers = {"moved": 301, "forbidden": 403, "broken": 500, "slow-down": 503}

    async def answer(request: web.Request) -> web.Response:
        status = answers[request.match_info["name"]]
        headers = {"Location": "http://elsewhere.invalid/"} if status == 301 else {}
        return web.Response(status=status, headers=headers)

    app = web.Application()
    app.router.add_get("/bucket/{name}", answer)
    server = await aiohttp_server(app)
    reader = RangedReader(aiohttp.ClientSession(), str(server.make_url("/bucket/")), Credentials("k", "s"), "us-east-1")
    try:
        for name, refused in [("moved", True), ("forbidden", True), ("broken", False), ("slow-down", False)]:
            with pytest.raises(Unanswered) as raised:
                await reader.read_start(name, 4096)
            assert raised.value.refused is refused, name
    finally:
        await reader.close()

"""The first bytes of many objects: requests signed by botocore's S3 signer, sent on one aiohttp session.

A replica's first listing over a bucket no replica shared a catalog of reads the first bytes of
every manifest (`S3Store._defer`, 1,500 of them for a month of a followed main). Through the
client each such GET costs about 1.5 ms of the event loop (parameter handling, event hooks,
response parsing: 2.3 s of CPU for 1,500); the same request signed by the same signer with the
client's own credentials and region and sent as a plain GET costs about 0.4 ms.

Only the simple answers are read here: 206 or 200 is the bytes, 404 or 416 is none. Anything else
(no connection, a timeout, a 5xx, a refusal, a redirect) is `Unanswered`: the caller reads again
through the client, which retries and reports an outage as every other request does. A refusal
(a 4xx or a redirect) says this way does not work against this store: `Bucket` stops using it.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.httpsession import ProxyConfiguration, get_cert_path
from botocore.utils import get_environ_proxies

# What a probe object URL is made for; its name is then replaced by each object's key.
_PROBE = "ranged-read-probe"


class Unanswered(Exception):
    """The store did not answer a ranged read simply (see the module); `refused`: with a 4xx."""

    def __init__(self, message: str, refused: bool) -> None:
        super().__init__(message)
        self.refused = refused


class RangedReader:
    """GETs of an object's first bytes, by key, signed as the client signs its own."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        bucket_url: str,
        credentials: Any,
        region: str,
        proxy: URL | None = None,
        proxy_auth: aiohttp.BasicAuth | None = None,
    ) -> None:
        self._session = session
        self._bucket_url = bucket_url
        self._credentials = credentials
        self._region = region
        self._proxy = proxy
        self._proxy_auth = proxy_auth

    @staticmethod
    async def open(session: Any, client: Any, bucket: str, timeout_seconds: float) -> RangedReader | None:
        """A reader over the endpoint, addressing, credentials and CA bundle of `client`, made by the
        aiobotocore `session`; None where its requests cannot be made the same way (proxies or a
        client certificate in its configuration, a signature other than SigV4, no credentials):
        the client reads those itself."""
        config = client.meta.config
        credentials = await session.get_credentials()  # the client's: the session keeps what it found
        if (
            credentials is None
            or getattr(config, "proxies", None)
            or getattr(config, "proxies_config", None)
            or getattr(config, "client_cert", None)
            or getattr(config, "signature_version", None) not in (None, "s3v4", "v4")
        ):
            return None
        # The object URL as the client addresses it (path or virtual-host style, its endpoint).
        probe = await client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": _PROBE})
        object_url = str(probe).partition("?")[0]
        if not object_url.endswith("/" + _PROBE):
            return None
        # As botocore resolves it for a client made without `verify`: the ca_bundle setting
        # (AWS_CA_BUNDLE or the profile's), else REQUESTS_CA_BUNDLE, else its default bundle.
        verify: Any = session.get_config_variable("ca_bundle") or os.environ.get("REQUESTS_CA_BUNDLE", True)
        context: ssl.SSLContext | bool = False
        if verify:
            context = ssl.create_default_context(cafile=get_cert_path(verify))
        # The proxy the client's requests go through, from HTTP(S)_PROXY and NO_PROXY as botocore
        # reads them for the client's endpoint (once, as the client does: aiohttp's `trust_env`
        # would read the environment and ~/.netrc again for every request, 0.4 ms each).
        proxy_url = ProxyConfiguration(proxies=get_environ_proxies(client.meta.endpoint_url)).proxy_url_for(object_url)
        proxy = URL(proxy_url) if proxy_url else None
        proxy_auth = None if proxy is None else aiohttp.BasicAuth.from_url(proxy)  # user:password@ in it
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(sock_connect=timeout_seconds, sock_read=timeout_seconds),
            auto_decompress=False,
        )
        return RangedReader(
            http, object_url[: -len(_PROBE)], credentials, client.meta.region_name,
            None if proxy is None else proxy.with_user(None), proxy_auth,
        )

    async def close(self) -> None:
        await self._session.close()

    async def read_start(self, object_key: str, size: int) -> bytes | None:
        """The object's first `size` bytes (all of a shorter one), or None if there is no such object
        (or no such bytes: an empty object). Raises Unanswered."""
        credentials = self._credentials
        if hasattr(credentials, "get_frozen_credentials"):
            credentials = credentials.get_frozen_credentials()
            if asyncio.iscoroutine(credentials):
                credentials = await credentials
        request = AWSRequest(
            method="GET", url=self._bucket_url + quote(object_key, safe="/~"), headers={"Range": f"bytes=0-{size - 1}"}
        )
        S3SigV4Auth(credentials, "s3", self._region).add_auth(request)
        try:
            async with self._session.get(
                request.url,
                headers=dict(request.headers.items()),
                allow_redirects=False,
                proxy=self._proxy,
                proxy_auth=self._proxy_auth,
            ) as response:
                if response.status in (200, 206):
                    return (await response.read())[:size]
                if response.status in (404, 416):
                    return None
                # A redirect (another region or endpoint) or a 4xx: this way does not reach the object
                # as the client would; a 5xx is the store's trouble, for the client to retry.
                raise Unanswered(f"{response.status} {response.reason}", refused=response.status < 500)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise Unanswered(str(e) or type(e).__name__, refused=False) from None

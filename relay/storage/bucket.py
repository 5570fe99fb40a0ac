"""One bucket and prefix of an object store: its client, its outages, and the conditional requests.

What the S3 store and its leases share: a request that fails for an outage (no connection, a timeout,
a 5xx, refused credentials) raises StoreUnavailable and is logged once until the bucket answers again;
a missing object is None, not an error; a conditional write that loses is False, not an error.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, TypeVar

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from relay.storage.ranged import RangedReader, Unanswered
from relay.storage.store import StoreConfigError, StoreUnavailable
from relay.upkeep import Problems

logger = logging.getLogger("relay.s3store")

T = TypeVar("T")

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/"

    @staticmethod
    def parse(url: str) -> S3Location:
        """`s3://BUCKET` or `s3://BUCKET/PREFIX`; raises StoreConfigError naming what is wrong."""
        if not url.startswith("s3://"):
            raise StoreConfigError(f"{url!r} is not an s3:// URL: use s3://BUCKET/PREFIX")
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not _BUCKET.fullmatch(bucket):
            raise StoreConfigError(
                f"{url!r}: {bucket!r} is not a bucket name (3-63 lowercase letters, digits, dots, hyphens)"
            )
        prefix = prefix.strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise StoreConfigError(f"{url!r}: the prefix may not have empty, '.' or '..' parts")
        return S3Location(bucket, prefix + "/" if prefix else "")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def error_code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def http_status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def missing(e: ClientError) -> bool:
    return error_code(e) in ("NoSuchKey", "404", "NotFound") or http_status(e) == 404


def precondition_failed(e: ClientError) -> bool:
    # 409: a concurrent conditional write to the same key is in progress (AWS); the other one wins.
    return error_code(e) in ("PreconditionFailed", "ConditionalRequestConflict") or http_status(e) in (409, 412)


class Bucket:
    """A bucket and prefix with a client (set by whoever connects it); object names are under the prefix."""

    def __init__(self, location: S3Location) -> None:
        self.location = location
        self.client: Any = None
        # Ranged reads of many objects' first bytes without the client's overhead (set by whoever
        # connects it; dropped once the store refuses one).
        self.ranged: RangedReader | None = None
        # Logged when it starts: its later failures are the same outage.
        self._outage = Problems(logger, f"{location}: the store is unavailable: ", again_when_changed=False)

    @property
    def outage(self) -> str | None:
        """What the last request that failed for an outage said, until a request succeeds."""
        return self._outage.get("")

    def key(self, name: str) -> str:
        """The object key of `name` (e.g. `leases/evictor`) under the prefix."""
        return f"{self.location.prefix}{name}"

    async def call(self, what: str, call: Awaitable[T]) -> T:
        """One request; an outage becomes StoreUnavailable, logged once until the bucket answers again.
        Other ClientErrors (404, 412) are the caller's to read."""
        try:
            result = await call
        except ClientError as e:
            code = http_status(e)
            if code >= 500 or code in (401, 403):
                self._down(f"{what}: {e}")
            raise
        except (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            self._down(f"{what}: {e or type(e).__name__}")
        if self._outage.resolve() is not None:
            logger.warning("%s: the store answers again", self.location)
        return result

    def _down(self, message: str) -> None:
        self._outage.report(message)
        raise StoreUnavailable(message)

    async def head_or_none(self, object_key: str, what: str) -> dict[str, Any] | None:
        """The object's head (ETag, LastModified, ...), or None if there is no such object."""
        try:
            head: dict[str, Any] = await self.call(
                what, self.client.head_object(Bucket=self.location.bucket, Key=object_key)
            )
        except ClientError as e:
            if missing(e):
                return None
            raise StoreUnavailable(f"{what}: {e}") from None
        return head

    async def get_or_none(self, object_key: str, what: str, **kwargs: Any) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None if there is no such object (or, with `Range`, no
        such bytes: an empty object has no first byte)."""
        try:
            response = await self.call(
                what, self.client.get_object(Bucket=self.location.bucket, Key=object_key, **kwargs))
            async with response["Body"] as body:
                raw = bytes(await self.call(what, body.read()))
        except ClientError as e:
            if missing(e) or http_status(e) == 416:
                return None
            raise StoreUnavailable(f"{what}: {e}") from None
        return raw, str(response["ETag"])

    async def get_start(self, object_key: str, size: int, what: str) -> bytes | None:
        """The object's first `size` bytes (a ranged read), or None if there is no such object.
        By `ranged` where it answers; through the client otherwise."""
        if self.ranged is not None:
            try:
                return await self.ranged.read_start(object_key, size)
            except Unanswered as e:
                if e.refused and self.ranged is not None:
                    logger.warning("%s: a signed ranged read of %s was refused (%s): reading through the S3 "
                                   "client from now on", self.location, object_key, e)
                    ranged, self.ranged = self.ranged, None
                    await ranged.close()
        found = await self.get_or_none(object_key, what, Range=f"bytes=0-{size - 1}")
        return None if found is None else found[0]

    async def put(self, object_key: str, body: bytes, what: str) -> str:
        """Write the object, replacing any (last writer wins): its ETag."""
        etag = await self._put(object_key, body, what)
        assert etag is not None  # only a condition fails
        return etag

    async def put_if_absent(self, object_key: str, body: bytes, what: str) -> str | None:
        """Write the object unless one exists (`If-None-Match: *`): its ETag, or None if one existed."""
        return await self._put(object_key, body, what, IfNoneMatch="*")

    async def put_if_match(self, object_key: str, body: bytes, etag: str, what: str) -> str | None:
        """Replace the object if it is still the one with `etag`: the new ETag, or None if it changed."""
        return await self._put(object_key, body, what, IfMatch=etag)

    async def _put(self, object_key: str, body: bytes, what: str, **condition: str) -> str | None:
        try:
            response = await self.call(what, self.client.put_object(
                Bucket=self.location.bucket, Key=object_key, Body=body, **condition))
        except ClientError as e:
            if precondition_failed(e):
                return None
            raise StoreUnavailable(f"{what}: {e}") from None
        return str(response["ETag"])

    async def delete_if_match(self, object_key: str, etag: str, what: str) -> bool:
        """Remove the object if it is still the one with `etag`; False if it changed or is gone."""
        try:
            await self.call(what, self.client.delete_object(Bucket=self.location.bucket, Key=object_key, IfMatch=etag))
        except ClientError as e:
            if precondition_failed(e) or missing(e):
                return False
            raise StoreUnavailable(f"{what}: {e}") from None
        return True

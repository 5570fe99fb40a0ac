"""Leases in an object store: one holder at a time across replicas, by conditional writes.

A lease is one object, `leases/<name>`, holding its owner and an expiry time. It is created with
`If-None-Match: *` (one creator wins), renewed and released with `If-Match: <its ETag>` (only the
holder can), and taken over with `If-Match` on the expired object's ETag (one taker wins), so a
replica that dies (kill -9) stops blocking others after one lease period. Expiry compares wall
clocks: replicas' clocks must agree to well within a lease period (NTP does).
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from relay.storage.store import StoreUnavailable

if TYPE_CHECKING:
    from relay.storage.s3 import S3Store

logger = logging.getLogger("relay.leases")


class Lease:
    """One named lease held by this replica, or not."""

    def __init__(self, store: S3Store, name: str, seconds: float) -> None:
        self.store = store
        self.name = name
        self.seconds = seconds
        self.key = store._lease_key(name)
        self._etag: str | None = None

    @property
    def held(self) -> bool:
        return self._etag is not None

    def _body(self) -> bytes:
        record = {"owner": self.store.replica, "expires": time.time() + self.seconds}
        return json.dumps(record).encode()

    async def _put(self, **condition: str) -> bool:
        from relay.storage.s3 import _precondition_failed

        client = self.store._client
        try:
            response = await self.store._call(
                f"lease {self.name}",
                client.put_object(Bucket=self.store.location.bucket, Key=self.key, Body=self._body(), **condition),
            )
        except ClientError as e:
            if _precondition_failed(e):
                return False
            raise StoreUnavailable(f"lease {self.name}: {e}") from None
        self._etag = response["ETag"]
        return True

    async def holder(self) -> tuple[str, float, str] | None:
        """(owner, expires, etag) of the lease as stored, or None if nobody holds it."""
        from relay.storage.s3 import _missing

        client = self.store._client
        try:
            response = await self.store._call(
                f"lease {self.name}", client.get_object(Bucket=self.store.location.bucket, Key=self.key)
            )
            async with response["Body"] as body:
                raw = await body.read()
        except ClientError as e:
            if _missing(e):
                return None
            raise StoreUnavailable(f"lease {self.name}: {e}") from None
        try:
            record = json.loads(raw)
            return str(record["owner"]), float(record["expires"]), response["ETag"]
        except (ValueError, KeyError, TypeError):
            # Unreadable: treat as expired so it does not block forever.
            return "?", 0.0, response["ETag"]

    async def acquire(self) -> bool:
        """Take the lease if it is free or expired; False if another replica holds it."""
        if await self._put(IfNoneMatch="*"):
            return True
        current = await self.holder()
        if current is None:
            return await self._put(IfNoneMatch="*")
        owner, expires, etag = current
        if expires > time.time():
            return False
        if await self._put(IfMatch=etag):
            logger.warning("took over lease %s from %s (expired %.0f s ago)", self.name, owner, time.time() - expires)
            return True
        return False

    async def renew(self) -> bool:
        """Extend the lease; False if it was lost (taken over after this replica stalled)."""
        if self._etag is None:
            return False
        if await self._put(IfMatch=self._etag):
            return True
        self._etag = None
        logger.warning("lost lease %s: another replica took it over", self.name)
        return False

    async def release(self) -> None:
        if self._etag is None:
            return
        etag, self._etag = self._etag, None
        try:
            await self.store._call(
                f"lease {self.name}",
                self.store._client.delete_object(Bucket=self.store.location.bucket, Key=self.key, IfMatch=etag),
            )
        except (ClientError, StoreUnavailable) as e:
            # Expires by itself; someone else may already hold it.
            logger.info("releasing lease %s: %s", self.name, e)

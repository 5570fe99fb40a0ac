"""Leases in an object store: one holder at a time across replicas, by conditional writes.

A lease is one object, `leases/<name>`, holding its owner and an expiry time. It is created with
`If-None-Match: *` (one creator wins), renewed and released with `If-Match: <its ETag>` (only the
holder can), and taken over with `If-Match` on the expired object's ETag (one taker wins), so a
replica that dies (kill -9) stops blocking others after one lease period. Expiry compares wall
clocks: replicas' clocks must agree to well within a lease period (NTP does).

The S3 store takes them for a commit's build (its build claim), for the evictor and for each publish.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from relay.storage.bucket import Bucket
from relay.storage.store import StoreUnavailable

logger = logging.getLogger("relay.leases")

LEASES = "leases/"


class Lease:
    """One named lease held by `owner` (this replica), or not."""

    def __init__(self, bucket: Bucket, name: str, seconds: float, owner: str) -> None:
        self.bucket = bucket
        self.name = name
        self.seconds = seconds
        self.owner = owner
        self.key = bucket.key(LEASES + name)
        self._etag: str | None = None

    @property
    def held(self) -> bool:
        return self._etag is not None

    def _body(self) -> bytes:
        record = {"owner": self.owner, "expires": time.time() + self.seconds}
        return json.dumps(record).encode()

    async def holder(self) -> tuple[str, float, str] | None:
        """(owner, expires, etag) of the lease as stored, or None if nobody holds it."""
        found = await self.bucket.get_or_none(self.key, f"lease {self.name}")
        if found is None:
            return None
        raw, etag = found
        try:
            record = json.loads(raw)
            return str(record["owner"]), float(record["expires"]), etag
        except (ValueError, KeyError, TypeError):
            # Unreadable: treat as expired so it does not block forever.
            return "?", 0.0, etag

    async def _created(self) -> bool:
        self._etag = await self.bucket.put_if_absent(self.key, self._body(), f"lease {self.name}")
        return self._etag is not None

    async def acquire(self) -> bool:
        """Take the lease if it is free or expired; False if another replica holds it."""
        if await self._created():
            return True
        current = await self.holder()
        if current is None:
            return await self._created()
        owner, expires, etag = current
        if expires > time.time():
            return False
        self._etag = await self.bucket.put_if_match(self.key, self._body(), etag, f"lease {self.name}")
        if self._etag is not None:
            logger.warning("took over lease %s from %s (expired %.0f s ago)", self.name, owner, time.time() - expires)
            return True
        return False

    async def renew(self) -> bool:
        """Extend the lease; False if it was lost (taken over after this replica stalled)."""
        if self._etag is None:
            return False
        etag = await self.bucket.put_if_match(self.key, self._body(), self._etag, f"lease {self.name}")
        if etag is not None:
            self._etag = etag
            return True
        self._etag = None
        logger.warning("lost lease %s: another replica took it over", self.name)
        return False

    async def keep_renewed(self) -> None:
        """Renew every third of the lease period until lost or cancelled (run it as a task)."""
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                if not await self.renew():
                    return
            except StoreUnavailable:
                pass  # the next renewal retries; a long outage lets another replica take over

    async def release(self) -> None:
        if self._etag is None:
            return
        etag, self._etag = self._etag, None
        try:
            await self.bucket.delete_if_match(self.key, etag, f"lease {self.name}")
        except StoreUnavailable as e:
            # Expires by itself; someone else may already hold it.
            logger.info("releasing lease %s: %s", self.name, e)

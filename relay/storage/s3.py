"""Exports in an S3-compatible bucket: listing, checked streams, conditional publishing, leases, eviction.

Layout under s3://BUCKET/PREFIX/ (docs/deployment.md):
    manifests/<key>.json          an export's manifest: written last, removed first
    headers/<key>.<md5>.<fields>  written just before the manifest: its header in the key, so that
                                  a new replica lists every export's place (relay/storage/header_keys.py)
    files/<sha256>                every wheel and .metadata file, once, named by its content's sha256
    leases/<name>                 who builds a commit, evicts, or publishes now, until when
    used/<replica>.json           each replica's last use of each export (written once a minute)
    evicted/<key>.json            the manifest of an evicted export: its files stay for a grace period
    catalog/<name>.sqlite3        a replica's catalog of parsed manifests, which a new replica starts from

A file object is removed only when no manifest (nor an evicted one still in its grace period) lists
it, by the evictor, under its lease, while no publish is under way (docs/deployment.md, "Eviction").

The client is aiobotocore: botocore's credential chain, endpoint configuration, signing and retries
(the standard AWS way: environment, shared config, profiles, AWS_ENDPOINT_URL) on aiohttp, the loop
the relay already runs, so a slow store never blocks a thread per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Mapping

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.utils import parse_timestamp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)
from cachetools import TTLCache

from relay.storage.header_keys import HEADERS, etag_md5, header_key, key_of, md5_of, read_header_keys
from relay.storage.bucket import Bucket, S3Location, error_code, http_status, missing, precondition_failed
from relay.storage.leases import LEASES, Lease
from relay.storage.ranged import RangedReader
from relay.contract import (
    HEADER_BYTES,
    HEADER_FIRST_BYTES,
    MANIFEST,
    ContractError,
    DistTable,
    Export,
    parse_header,
    parse_manifest,
    read_export,
)
from relay.storage.catalog import SHARED_NAME, Catalog, Recorded, Unwritten
from relay.storage.store import (
    CHUNK_BYTES,
    FOREGROUND_PARSES,
    TOUCH_INTERVAL_SECONDS,
    Blob,
    EvictionPolicy,
    NotListed,
    PublishConflict,
    Store,
    StoreConfigError,
    StoredExport,
    StoreUnavailable,
    check_listed_files,
    read_order,
    to_evict,
)
from relay.upkeep import Problems, forever

logger = logging.getLogger("relay.s3store")

_KEY = re.compile(r"[0-9a-f]{40}(\.dirty)?")
# A commit looked for and not found is not looked for again for this long.
MISS_SECONDS = 1.0
# Files uploaded at once by `publish`.
UPLOADS_AT_ONCE = 16
# A lease not renewed for this long is taken over (its holder died).
LEASE_SECONDS = 30.0
# An evicted export's files stay this long after its manifest went: downloads that started before
# still finish on every replica.
EVICTION_GRACE_SECONDS = 600.0
# Files removed by the evictor between two checks that it still holds its lease and no publish runs.
DELETES_PER_CHECK = 100
# A publish waits at most this many lease periods for an eviction round to end.
PUBLISH_WAIT_LEASES = 10
_SHA256 = re.compile(r"[0-9a-f]{64}")
PRESIGN_SECONDS = 300
# A replica lists the manifests every scan interval but makes at most one LIST request (a page of
# 1,000 manifests) per this many seconds on average: 1,500 exports, 2 requests per 5 s; 20,000
# exports, 20 requests per 20 s.
LIST_PAGE_SECONDS = 1.0
# New or changed manifests read at once (a replica's start reads them all): their transfers overlap.
READS_AT_ONCE = 8
# A replica puts its catalog in the bucket when it changed, at most this often and only when no
# replica did for as long (and when it stops), so that a new replica (an empty work directory: a
# new host, a container started afresh) reads only the manifests written since, as a restart does.
CATALOG_SHARE_SECONDS = 300.0


@functools.lru_cache(maxsize=1)
def _loader() -> Any:
    return get_session().get_component("data_loader")


def _timestamp(value: Any) -> datetime.datetime:
    """botocore's timestamp parser, with the ISO 8601 form S3 lists objects with read by the standard
    library: botocore reads every timestamp with dateutil, which took more than half of a replica's
    restart (two listings of 6,500 objects)."""
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    return parse_timestamp(value)  # type: ignore[no-any-return]


def _session() -> Any:
    # A new session reads credentials afresh; the model loader is shared, as it caches the S3 service
    # model, which takes ~1 s to load.
    session = get_session()
    session.register_component("data_loader", _loader())
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp)
    return session


@dataclass(frozen=True)
class _Listed:
    etag: str
    modified: float
    size: int

    @property
    def stamp(self) -> tuple[int | str, ...]:
        """What the catalog keeps of a listed manifest: a row is used only while the listing still
        says this. The relay writes a manifest with one PUT (never multipart), whose ETag is the MD5
        of its bytes (on stores and encryption modes where it is not, a rewrite still gets a new
        LastModified); the size and write time make a different object with an equal ETag count as
        changed all the same. A manifest is never rewritten with other bytes (`_put_once`)."""
        return (self.etag, self.size, round(self.modified * 1000))


def listing_interval(scan_interval: float, pages: int) -> float:
    """Seconds between two listings of the manifests: `scan_interval`, stretched once they take more
    than one LIST request (1,000 manifests) so that a replica makes at most one per LIST_PAGE_SECONDS
    on average. Only new or changed manifests (by ETag) are read and parsed; the listing itself grows
    with the exports."""
    return scan_interval if pages <= 1 else max(scan_interval, pages * LIST_PAGE_SECONDS)


class S3Store(Store):
    """Exports in a bucket, shared by any number of relays (replicas) and `relay publish` runs."""

    def __init__(
        self,
        location: S3Location,
        scan_interval: float = 5.0,
        replica: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        grace_seconds: float = EVICTION_GRACE_SECONDS,
        timeout_seconds: float = 10.0,
        poll_seconds: float = 1.0,
        catalog_dir: Path | None = None,
        read_tips_first: bool = False,
    ) -> None:
        """`read_tips_first`: a listing with more than FOREGROUND_PARSES manifests never read
        (a new replica over a bucket no replica shared a catalog of) reads the branches' tips and
        the newest before it returns, and the rest while the replica serves (`_defer`); False
        (`check`): every listing reads every new manifest before it returns."""
        self.location = location
        self.scan_interval = scan_interval
        self.replica = replica or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        self.bucket = Bucket(location)
        self._stack: contextlib.AsyncExitStack | None = None
        # Checked (`_check`) by this process: `serve` checks before it serves, then starts the store.
        self._checked = False
        self._tasks: list[asyncio.Task[None]] = []
        self._exports: dict[str, StoredExport] = {}
        self._listed: dict[str, _Listed] = {}
        self._reported = Problems(logger)
        self._generation = 0
        self._last_used: dict[str, float] = {}
        self._used_dirty = False
        self._pins: dict[str, int] = {}
        # Commits looked for and not found. Forgetting one early (a flood of made-up commits fills
        # it) costs one more HEAD request for it, nothing else.
        self._missed: TTLCache[str, bool] = TTLCache(maxsize=4096, ttl=MISS_SECONDS)
        # The file objects (sha256 -> size) as last listed; listed again when a manifest names one
        # that is not in it.
        self._objects: dict[str, int] = {}
        # Made in the running loop (an asyncio.Lock of Python 3.9 binds to the loop at creation).
        self._listing_objects: asyncio.Lock | None = None
        # Dists shared by content across exports: memory follows distinct dists, not exports x dists.
        self._table = DistTable()
        # LIST requests made, and how many the last listing of the manifests took.
        self._pages_listed = 0
        self._manifest_pages = 1
        # This replica's catalog of parsed manifests (relay/storage/catalog.py) in its work directory,
        # so a restart reads only the manifests that are new or changed (by `_Listed.stamp`). Never
        # the source of truth: a row's export is served only once its files are checked as a
        # manifest read from the bucket is. None: every start reads every manifest (`check`).
        self._catalog = None if catalog_dir is None else Catalog(catalog_dir)
        self._catalog_lock: asyncio.Lock | None = None
        # The rows read at the first listing (then dropped); rows not written yet, keys written.
        self._recorded: dict[str, Recorded] | None = None if catalog_dir is not None else {}
        self._unwritten = Unwritten()
        # The rows of a listing being written, on the side; what the last complete listing found.
        self._recording: asyncio.Future[None] | None = None
        self._last_found: Mapping[str, StoredExport] | None = None
        # When this replica last looked at sharing its catalog, and whether it changed since it did.
        self._shared_at = float("-inf")
        self._catalog_changed = False
        # Manifests read (GET) and parsed since the store was made.
        self.manifests_read = 0
        # Manifests a listing left to read while serving (key -> as listed), and what reads them.
        self.read_tips_first = read_tips_first
        self._filling: dict[str, _Listed] = {}
        self._fill_tasks: set[asyncio.Future[None]] = set()
        # Manifests a first listing found without a header key (an earlier relay published them):
        # the key is written once the manifest is read, so the next new replica lists it.
        self._unkeyed: set[str] = set()

    # Keys in the bucket.

    def _manifest_key(self, key: str) -> str:
        return f"{self.location.prefix}manifests/{key}.json"

    def _file_key(self, sha256: str) -> str:
        return f"{self.location.prefix}files/{sha256}"

    def _shared_catalog_key(self) -> str:
        return f"{self.location.prefix}catalog/{SHARED_NAME}"

    def _legacy_prefix(self) -> str:
        """Where relays before content-addressed files kept them: exports/<key>/<filename>."""
        return f"{self.location.prefix}exports/"

    # Connection and start-up checks.

    @property
    def description(self) -> str:
        return str(self.location)

    async def connect(self) -> None:
        """Open the client and check the bucket works for the relay (no background work)."""
        if self.bucket.client is not None:
            return
        self._stack = contextlib.AsyncExitStack()
        config = AioConfig(
            connect_timeout=self.timeout_seconds,
            read_timeout=self.timeout_seconds,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=64,
        )
        try:
            session = _session()
            self.bucket.client = await self._stack.enter_async_context(session.create_client("s3", config=config))
            if self.read_tips_first:
                ranged = await RangedReader.open(
                    session, self.bucket.client, self.location.bucket, self.timeout_seconds)
                if ranged is not None:
                    self.bucket.ranged = ranged
                    self._stack.push_async_callback(self._close_ranged)
        except BotoCoreError as e:
            await self._stack.aclose()
            raise StoreConfigError(f"{self.location}: cannot make an S3 client: {e}") from None
        if self._checked:
            return  # checked by this process already (`serve` checks before it starts the store)
        try:
            await self._check()
        except BaseException:
            await self.close()
            raise
        self._checked = True

    async def _close_ranged(self) -> None:
        ranged, self.bucket.ranged = self.bucket.ranged, None
        if ranged is not None:
            await ranged.close()

    async def _check(self) -> None:
        where = str(self.location)
        endpoint = self.bucket.client.meta.endpoint_url
        try:
            await self.bucket.client.head_bucket(Bucket=self.location.bucket)
        except (NoCredentialsError, PartialCredentialsError):
            raise StoreConfigError(
                f"{where}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE, or give the machine a role"
            ) from None
        except (EndpointConnectionError, aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise StoreConfigError(
                f"{where}: the object store at {endpoint} cannot be reached ({e}); check AWS_ENDPOINT_URL "
                "(or endpoint_url in ~/.aws/config) and that the store is running"
            ) from None
        except ClientError as e:
            status = http_status(e)
            if status == 404 or error_code(e) == "NoSuchBucket":
                raise StoreConfigError(
                    f"{where}: bucket {self.location.bucket!r} does not exist at {endpoint}; create it "
                    f"(e.g. `aws s3 mb s3://{self.location.bucket}`) or fix the name"
                ) from None
            if status in (401, 403):
                raise StoreConfigError(
                    f"{where}: the store at {endpoint} refused the credentials ({error_code(e) or status}); check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and that they may read "
                    "and write the bucket"
                ) from None
            raise StoreConfigError(f"{where}: checking the bucket at {endpoint} failed: {e}") from None
        # Publishing and leases rely on `If-None-Match: *`: a store that ignores it would let two
        # writers both win. Probe it once with a throwaway object.
        probe = f"{self.location.prefix}leases/probe-{self.replica}-{secrets.token_hex(4)}"
        try:
            await self.bucket.client.put_object(Bucket=self.location.bucket, Key=probe, Body=b"1", IfNoneMatch="*")
            try:
                await self.bucket.client.put_object(Bucket=self.location.bucket, Key=probe, Body=b"2", IfNoneMatch="*")
            except ClientError as e:
                if not precondition_failed(e):
                    raise
            else:
                raise StoreConfigError(
                    f"{where}: the store at {endpoint} ignores conditional writes (If-None-Match: *), which "
                    "the relay needs so that two writers never both win; use a store that supports them "
                    "(AWS S3, MinIO, SeaweedFS, Ceph RGW >= 18) or a directory store"
                )
            await self.bucket.client.delete_object(Bucket=self.location.bucket, Key=probe)
        except ClientError as e:
            if http_status(e) in (401, 403):
                raise StoreConfigError(
                    f"{where}: the credentials may read but not write the bucket ({error_code(e)}); the relay "
                    "writes manifests, leases and last-use records: grant s3:PutObject and s3:DeleteObject"
                ) from None
            raise StoreConfigError(f"{where}: a test write to the bucket failed: {e}") from None

    async def start(self) -> None:
        # A restart's catalog is read on a thread while the client connects and lists the bucket;
        # a replica without one starts from the catalog the replicas share in the bucket, if any.
        seed = self._catalog is not None and not self._catalog.path.exists()
        reading = None if seed else asyncio.ensure_future(self._read_catalog())
        try:
            await self.connect()
            await self.move_legacy_files()
            if seed:
                await self._seed_catalog()
        except BaseException:
            if reading is not None:
                await asyncio.gather(reading, return_exceptions=True)
            raise
        await self.refresh()
        # An outage is logged by the bucket, once; the next round retries.
        work = f"{self.location}: background work"
        self._tasks = [
            asyncio.ensure_future(forever(
                work, self.refresh, lambda: listing_interval(self.scan_interval, self._manifest_pages), logger,
                wait_first=True, reported=(StoreUnavailable,))),
            asyncio.ensure_future(forever(
                work, self.flush_last_use, TOUCH_INTERVAL_SECONDS, logger, wait_first=True, reported=(StoreUnavailable,))),
        ]

    async def move_legacy_files(self) -> int:
        """Move files from where relays before content-addressed files kept them, exports/<key>/<name>,
        to files/<sha256> (a copy inside the bucket, then the old object is removed), so a bucket
        those relays wrote stays readable. Returns how many objects were moved. Idempotent: replicas
        starting together may all run it."""
        prefix = self._legacy_prefix()
        legacy = [item async for item in self._list(prefix)]
        if not legacy:
            return 0
        logger.warning(
            "%s: moving %d file(s) from exports/<key>/ (the layout of earlier relays) to files/<sha256>; "
            "stop relays of earlier versions on this bucket and upgrade CI's `relay publish`",
            self.location, len(legacy),
        )
        await self._list_objects()
        manifests: dict[str, Export | None] = {}
        for item in legacy:
            key, _, filename = item["Key"][len(prefix):].partition("/")
            if key not in manifests:
                raw = await self._read_or_none(self._manifest_key(key))
                try:
                    manifests[key] = None if raw is None else parse_manifest(raw, self._manifest_key(key))
                except ContractError:
                    manifests[key] = None
            export = manifests[key]
            digest = None if export is None else export.digest(filename)
            if digest is not None and self._objects.get(digest[0]) != digest[1]:
                await self.bucket.call(f"moving {item['Key']}", self.bucket.client.copy_object(
                    Bucket=self.location.bucket, Key=self._file_key(digest[0]),
                    CopySource={"Bucket": self.location.bucket, "Key": item["Key"]},
                ))
                self._objects[digest[0]] = digest[1]
        # Files of no manifest (evicted) go with the rest; so do the old eviction marks (evicted/<key>).
        old_marks = [
            i["Key"] async for i in self._list(f"{self.location.prefix}evicted/") if not i["Key"].endswith(".json")
        ]
        names = [item["Key"] for item in legacy] + old_marks
        for start in range(0, len(names), 1000):
            batch = [{"Key": n} for n in names[start:start + 1000]]
            await self.bucket.call("removing moved files", self.bucket.client.delete_objects(
                Bucket=self.location.bucket, Delete={"Objects": batch, "Quiet": True}))
        return len(legacy)

    async def close(self) -> None:
        for task in [*self._tasks, *self._fill_tasks]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._fill_tasks, return_exceptions=True)
        self._tasks = []
        if self._catalog is not None:
            if self._recording is not None:
                await asyncio.gather(self._recording, return_exceptions=True)
                self._recording = None
            if self._last_found is not None:
                # Rows a busy catalog or a write under way left, and what was read since the last
                # listing (while serving, or asked for by its sha).
                await self._record(self._exports, share=False)
            if self._catalog_changed and self.bucket.client is not None:
                # A replica that stops leaves what it read for the next new one.
                await self._share_catalog(now=True)
        if self.bucket.client is not None:
            with contextlib.suppress(StoreUnavailable):
                await self.flush_last_use()
        if self._stack is not None:
            await self._stack.aclose()
        self.bucket.client = None
        self._stack = None
        if self._catalog is not None:
            self._catalog.close()

    def unavailable(self) -> str | None:
        # Set by the last request that failed (a listing runs every scan_interval), cleared by the
        # next one that succeeds.
        outage = self.bucket.outage
        return None if outage is None else f"the object store is unavailable: {outage}"

    # Listing.

    @property
    def generation(self) -> int:
        return self._generation

    def exports(self) -> Mapping[str, StoredExport]:
        return self._exports

    @property
    def reading(self) -> int:
        return len(self._filling)

    @property
    def problems(self) -> Mapping[str, str]:
        return dict(self._reported)

    async def _list(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.location.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = await self.bucket.call(f"listing {prefix}", self.bucket.client.list_objects_v2(**kwargs))
            self._pages_listed += 1
            for item in page.get("Contents", ()):
                yield item
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    async def refresh(self) -> None:
        """List the manifests; read the new or changed ones and check their files are all there."""
        prefix = f"{self.location.prefix}manifests/"
        listed: dict[str, _Listed] = {}
        pages_before = self._pages_listed
        async for item in self._list(prefix):
            name = item["Key"][len(prefix):]
            if name.endswith(".json") and "/" not in name and not name.startswith("."):
                listed[name[: -len(".json")]] = _Listed(
                    item["ETag"], item["LastModified"].timestamp(), int(item["Size"]))
        self._manifest_pages = self._pages_listed - pages_before
        fresh = [False]  # the file objects were listed in this round
        reads = asyncio.Semaphore(READS_AT_ONCE)
        first = self._catalog is not None and self._last_found is None
        file_listing: asyncio.Future[None] | None = None
        if first:
            # A restart checks every catalog row's files: list the file objects once, while the
            # rows (and a first start's headers) are read, rather than let every row's check fail
            # on an empty listing and run again after it. Only now: every manifest listed above has
            # its files written by now.
            file_listing = asyncio.ensure_future(self._list_objects())
        recorded: dict[str, Recorded] = {}
        unstored: dict[str, tuple[str, bool] | None] = {}

        async def load(key: str, entry: _Listed) -> StoredExport | None:
            previous = self._exports.get(key)
            if previous is not None and self._listed.get(key) == entry:
                if key not in self._unwritten.keys:  # found by `find` (a HEAD), not recorded yet
                    self._note(key, entry, previous)
                return previous
            if key in self._filling:
                return None  # read while serving (`_fill`)
            row = recorded.pop(key, None)
            if row is not None and key in unstored and unstored[key] is None:
                self._reported.resolve(key)
                return StoredExport(export=row.export, size=row.size)
            if row is not None and row.stamp == entry.stamp:
                # Something looked missing: listed again (once a round) and checked as a manifest's.
                stored = await self._from_catalog(key, row, fresh)
                if stored is not None:
                    return stored
            async with reads:
                return await self._load(key, fresh, entry)

        deferred: list[str] = []
        try:
            if first:
                await self._read_catalog()
            recorded, self._recorded = self._recorded or {}, {}
            rows = {
                key: row
                for key, entry in listed.items()
                if (row := recorded.get(key)) is not None and row.stamp == entry.stamp and row.export.key == key
            }
            for key in [k for k, e in self._filling.items() if listed.get(k) != e]:
                del self._filling[key]  # gone or rewritten since it was left for later: read as listed now
            deferred = await self._defer(listed, rows)
            if file_listing is not None:
                await file_listing
                fresh[0] = True
            # The rows that stand for a manifest as listed now have their files checked against the
            # listing in one pass on a thread: a restart has 1,500 of them, one thread hop each before.
            if rows:
                unstored = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: {key: self._unstored(row.export) for key, row in rows.items()})
            loaded = await asyncio.gather(*(load(key, entry) for key, entry in listed.items()))
        except BaseException:
            # What this listing left for later goes back to the next one, which reads it: nothing
            # stays queued with nothing to read it.
            for key in deferred:
                if self._filling.get(key) == listed[key]:
                    del self._filling[key]
            raise
        finally:
            if file_listing is not None and not file_listing.done():
                file_listing.cancel()
                await asyncio.gather(file_listing, return_exceptions=True)
        if not self._filling:
            self._table.forget_recent()  # the entries kept while this listing's manifests were read
        found = {key: stored for key, stored in zip(listed, loaded) if stored is not None}
        for key, stored in self._exports.items():
            # Read meanwhile (while serving, or asked for by its sha) and still listed so: kept.
            if key not in found and key in listed and self._listed.get(key) == listed[key]:
                found[key] = stored
        if found.keys() != self._exports.keys() or any(found[k] is not self._exports[k] for k in found):
            self._generation += 1
        self._exports = found
        self._listed = {k: v for k, v in listed.items() if k in found}
        self._reported.keep_only(listed)
        recorded.clear()  # rows of manifests no longer listed: dropped by `_record`
        self._last_found = found
        if self._catalog is not None and (self._recording is None or self._recording.done()):
            # On the side: a new replica's first listing records every manifest (seconds at 1,500),
            # which no page waits for. Rows left while one is written go with the next listing's.
            self._recording = asyncio.ensure_future(self._record(found))
        if deferred:
            task = asyncio.ensure_future(self._fill([(key, listed[key]) for key in deferred]))
            self._fill_tasks.add(task)
            task.add_done_callback(self._fill_tasks.discard)

    async def _defer(self, listed: Mapping[str, _Listed], rows: Mapping[str, Recorded]) -> list[str]:
        """The manifests this listing leaves to read while the replica serves, in the order to read
        them (and now in `_filling`). With more than FOREGROUND_PARSES never read (no export, no
        catalog row), the first bytes of each are read (a ranged GET: the fields before `dists`)
        and the listing reads the tip of every branch they name and those whose fields cannot be
        read alone (`store.read_order`): what a first page shows. Unlike a directory store's scan
        (which parses the 16 newest too, from the page cache), the newest others are read first
        while serving: each is one more GET of a whole manifest before the first page."""
        new = [
            key for key, entry in listed.items()
            if key not in rows and key not in self._filling
            and not (key in self._exports and self._listed.get(key) == entry)
        ]
        if not self.read_tips_first or len(new) <= FOREGROUND_PARSES:
            return []
        slots = asyncio.Semaphore(READS_AT_ONCE * 4)
        started = time.monotonic()
        carried = await self._header_keys()
        # The headers a key holds for the manifest as listed (its ETag is the MD5 the key names).
        by_key = {
            key: fields for key in new if (fields := carried.get(key, {}).get(etag_md5(listed[key].etag))) is not None
        }

        async def header(key: str) -> Mapping[str, Any] | None:
            if key in by_key:
                return by_key[key]
            what = f"reading the start of {self._manifest_key(key)}"
            async with slots:
                head = await self.bucket.get_start(self._manifest_key(key), HEADER_FIRST_BYTES, what)
                found = None if head is None else parse_header(head)
                if found is None and head is not None and len(head) == HEADER_FIRST_BYTES:
                    head = await self.bucket.get_start(self._manifest_key(key), HEADER_BYTES, what)
                    found = None if head is None else parse_header(head)
            return found

        headers = dict(zip(new, await asyncio.gather(*(header(key) for key in new))))
        self._unkeyed.update(key for key in new if key not in by_key)
        _, _, later = read_order(headers, 0)
        for key in later:
            self._filling[key] = listed[key]
        if later:
            logger.info("%s: %d manifests never read (their headers known in %.1f s, %d from their keys under "
                        "headers/): the branches' tips first, %d more while serving (tagged, then newest first)",
                        self.location, len(new), time.monotonic() - started, len(by_key), len(later))
        return later

    async def _header_keys(self) -> dict[str, dict[str, Mapping[str, Any]]]:
        """The headers `relay publish` wrote in keys under headers/ (`header_keys`): one listing."""
        prefix = self.bucket.key(HEADERS)
        return read_header_keys([item["Key"][len(prefix):] async for item in self._list(prefix)])

    async def _fill(self, queue: list[tuple[str, _Listed]]) -> None:
        """Read what a listing left for later (`_defer`), in its order, listing each once read; one
        that fails to read is left to the next listing."""
        fresh = [False]
        reads = asyncio.Semaphore(READS_AT_ONCE)

        async def one(key: str, entry: _Listed) -> None:
            async with reads:
                if self._filling.get(key) != entry:
                    return  # read by `find`, or gone or rewritten since
                try:
                    stored = await self._load(key, fresh, entry)
                finally:
                    if self._filling.get(key) == entry:
                        del self._filling[key]
            if stored is not None:
                self._list_one(key, entry, stored)

        try:
            await asyncio.gather(*(one(key, entry) for key, entry in queue), return_exceptions=True)
        finally:
            for key, entry in queue:
                if self._filling.get(key) == entry:
                    del self._filling[key]  # cancelled: the next listing reads it
            if not self._filling:
                self._table.forget_recent()

    # The catalog.

    async def _read_catalog(self) -> None:
        """Read the catalog's rows, once, into `_recorded` (the first listing takes them)."""
        if self._recorded is not None or self._catalog is None:
            return
        catalog = self._catalog

        def load() -> dict[str, Recorded]:
            try:
                catalog.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError:
                pass  # the catalog says it cannot be created, once
            return catalog.load(self._table)

        async with self._catalog_locked():
            if self._recorded is None:
                self._recorded = await asyncio.get_running_loop().run_in_executor(None, load)
                self._unwritten.loaded(self._recorded)

    def _catalog_locked(self) -> asyncio.Lock:
        # Made in the running loop (Python 3.9); one connection, used by one thread at a time.
        if self._catalog_lock is None:
            self._catalog_lock = asyncio.Lock()
        return self._catalog_lock

    def _note(self, key: str, entry: _Listed, stored: StoredExport) -> None:
        if self._catalog is not None:
            self._unwritten.note(key, Recorded(stamp=entry.stamp, export=stored.export, size=stored.size))

    async def _from_catalog(self, key: str, row: Recorded, fresh: list[bool]) -> StoredExport | None:
        """The export a catalog row recorded for the manifest as listed now, once its files are
        checked as `_load` checks a manifest's (the row says nothing of the files' objects now);
        None: read the manifest instead (which reports what is wrong)."""
        if row.export.key != key:
            return None
        try:
            await self._check_files(row.export, fresh)
        except ContractError:
            return None
        self._reported.resolve(key)
        return StoredExport(export=row.export, size=row.size)

    async def _record(self, found: Mapping[str, StoredExport], share: bool = True) -> None:
        """Bring the catalog in line with this listing: exports read from manifests in, the ones
        gone out; one transaction (another process of this host writing it: next time). Then
        share it in the bucket when due (`_share_catalog`)."""
        catalog = self._catalog
        if catalog is None:
            return
        due = self._unwritten.due(found)
        if due is not None:
            rows, removed = due
            loop = asyncio.get_running_loop()
            async with self._catalog_locked():
                if not await loop.run_in_executor(None, catalog.write, rows, removed):
                    return
                if removed:
                    await loop.run_in_executor(None, catalog.forget_unlisted_dists)
            self._unwritten.written(rows, removed)
            self._catalog_changed = True
        if share and self._catalog_changed:
            await self._share_catalog()

    async def _share_catalog(self, now: bool = False) -> None:
        """Put a snapshot of this replica's catalog in the bucket (catalog/<name>), where a new
        replica starts from it (`_seed_catalog`): when it changed since this replica last did, at
        most every CATALOG_SHARE_SECONDS, and only if no replica did for as long (`now`: when it
        changed, whatever the time: a replica that stops). Last writer wins; the rows are checked
        as this replica's own are, so an older or another replica's catalog costs manifest reads,
        never a wrong page. An outage skips it (the listing reports outages)."""
        catalog = self._catalog
        if catalog is None or self.bucket.client is None:
            return
        clock = time.monotonic()
        if not now and clock - self._shared_at < CATALOG_SHARE_SECONDS:
            return
        self._shared_at = clock
        key = self._shared_catalog_key()
        try:
            if not now:
                head = await self.bucket.head_or_none(key, "looking at the shared catalog")
                if head is not None and time.time() - head["LastModified"].timestamp() < CATALOG_SHARE_SECONDS:
                    return  # another replica shared one lately
            async with self._catalog_locked():
                snapshot = await asyncio.get_running_loop().run_in_executor(None, catalog.snapshot)
            if snapshot is None:
                return
            await self.bucket.put(key, snapshot, "sharing the catalog")
        except StoreUnavailable:
            return
        self._catalog_changed = False
        logger.info("%s: shared this replica's catalog (%d bytes) for new replicas", self.location, len(snapshot))

    async def _seed_catalog(self) -> None:
        """A replica with no catalog in its work directory starts from the one shared in the bucket:
        its first listing then reads only the manifests new or changed since, as a restart does."""
        catalog = self._catalog
        if catalog is None:
            return
        try:
            found = await self.bucket.get_or_none(self._shared_catalog_key(), "reading the shared catalog")
        except StoreUnavailable:
            return  # every manifest is read instead
        if found is None:
            return
        snapshot = found[0]
        if await asyncio.get_running_loop().run_in_executor(None, catalog.seed, snapshot):
            logger.info("%s: starting from the catalog shared in the bucket (%d bytes)", self.location, len(snapshot))
        await self._read_catalog()

    async def find(self, key: str) -> StoredExport | None:
        stored = self._exports.get(key)
        if stored is not None or not _KEY.fullmatch(key):
            return stored
        if key in self._missed:
            return None
        self._missed[key] = True
        head = await self.bucket.head_or_none(self._manifest_key(key), f"checking the manifest of {key}")
        if head is None:
            return None
        stored = await self._load(key)
        if stored is not None:
            self._filling.pop(key, None)  # asked for while it waited to be read: read now
            self._list_one(key, _Listed(head["ETag"], head["LastModified"].timestamp(), int(head["ContentLength"])),
                           stored)
        return self._exports.get(key)

    def _list_one(self, key: str, entry: _Listed, stored: StoredExport) -> None:
        """List an export read between two listings (the next listing keeps it while its manifest
        is listed as `entry`), unless one was listed for its key meanwhile."""
        if key not in self._exports:
            self._exports = {**self._exports, key: stored}
            self._listed = {**self._listed, key: entry}
            self._generation += 1

    async def _load(self, key: str, fresh: list[bool] | None = None, listed: _Listed | None = None) -> StoredExport | None:
        """The export of a manifest whose files are all there, else None (reported once).

        `fresh[0]` says the file objects were listed in this round already: a round lists them at
        most once, however many new manifests it reads. Parsing and checking run on a thread: a
        replica reading a thousand manifests still answers meanwhile. `listed`: the manifest as listed,
        recorded in the catalog with the export if the object read is still that one (its ETag)."""
        where = f"{self.location}manifests/{key}.json"
        found = await self.bucket.get_or_none(self._manifest_key(key), f"reading {self._manifest_key(key)}")
        if found is None:
            return None  # evicted between the listing and now
        raw, etag = found
        self.manifests_read += 1
        loop = asyncio.get_running_loop()
        try:
            export = await loop.run_in_executor(None, parse_manifest, raw, where, self._table)
            if export.key != key:
                raise ContractError(f"{where}: names commit {export.key!r} but is stored as {key!r}")
            await self._check_files(export, fresh)
        except ContractError as e:
            self._reported.report(f"skipping export: {e}", key)
            return None
        self._reported.resolve(key)
        stored = StoredExport(export=export, size=export.size(len(raw)))
        if listed is not None and listed.etag == etag:
            self._note(key, listed, stored)
        if key in self._unkeyed:
            self._unkeyed.discard(key)
            await self._write_header_key(key, raw, etag)
        return stored

    async def _write_header_key(self, key: str, manifest: bytes, etag: str) -> None:
        """Write the header key of a manifest an earlier relay published without one, as `relay
        publish` does, if the manifest's ETag is its MD5 (else no key would hold). Best effort: a
        failure costs the next new replica one ranged read, nothing else."""
        carried = await asyncio.get_running_loop().run_in_executor(None, header_key, key, manifest)
        if carried is None or md5_of(carried[0]) != etag_md5(etag):
            return
        with contextlib.suppress(StoreUnavailable, ClientError):
            await self.bucket.put(self.bucket.key(HEADERS + carried[0]), carried[1], "writing a header's key")

    async def _check_files(self, export: Export, fresh: list[bool] | None) -> None:
        """Raise ContractError unless every file the export lists is in the bucket with its size
        (as listed; listed again, at most once a round, when one looks missing)."""
        loop = asyncio.get_running_loop()
        # Whether the objects were listed this round before this check read them: one that began
        # before another export's listing ended checks again (it read the objects listed before).
        listed = fresh is not None and fresh[0]
        problem = await loop.run_in_executor(None, self._unstored, export)
        if problem is not None and not listed:
            if self._listing_objects is None:
                self._listing_objects = asyncio.Lock()
            async with self._listing_objects:
                if fresh is None or not fresh[0]:
                    await self._list_objects()
                    if fresh is not None:
                        fresh[0] = True
            problem = await loop.run_in_executor(None, self._unstored, export)
        if problem is not None:
            message, missing = problem
            raise ContractError(message + (await self._legacy_hint() if missing else ""))

    def _unstored(self, export: Export) -> tuple[str, bool] | None:
        """What is wrong with the export's files as last listed (the first file in name order), and
        whether it is missing; None when all are there."""
        objects = self._objects
        # The common case, without building the export's file table (a restart checks 1,500 exports).
        if all(objects.get(d.sha256) == d.size and objects.get(d.metadata_sha256) == d.metadata_size
               for d in export.dists):
            return None
        for filename, (sha256, size) in sorted(export.files.items()):
            stored_size = objects.get(sha256)
            if stored_size is None:
                return f"{self.location}files/{sha256} ({filename}): listed in the manifest but missing", True
            if stored_size != size:
                return f"{self.location}files/{sha256} ({filename}): {stored_size} bytes, the manifest says {size}", False
        return None

    async def _list_objects(self) -> None:
        prefix = f"{self.location.prefix}files/"
        objects: dict[str, int] = {}
        async for item in self._list(prefix):
            name = item["Key"][len(prefix):]
            if _SHA256.fullmatch(name):
                objects[name] = int(item["Size"])
        self._objects = objects

    async def _legacy_hint(self) -> str:
        """Why files may be missing: the bucket still has them where earlier relays kept them."""
        async for _ in self._list(self._legacy_prefix()):
            return (
                f"; the bucket still holds files under {self.location}exports/<key>/ as relays and "
                "`relay publish` before content-addressed files wrote them: start a relay of this "
                "version on the bucket (`relay serve --store ...`), which moves them, and upgrade "
                "CI's `relay publish`"
            )
        return ""

    # Files.

    def _listed_file(self, key: str, filename: str) -> tuple[str, str, int]:
        """(object key, sha256, size) of a file the export's manifest lists; NotListed otherwise."""
        stored = self._exports.get(key)
        digest = None if stored is None else stored.export.digest(filename)
        if digest is None:
            raise NotListed(f"{key}/{filename}")
        return self._file_key(digest[0]), digest[0], digest[1]

    async def _get(self, key: str, filename: str) -> tuple[Any, str]:
        object_key, sha256, _ = self._listed_file(key, filename)
        try:
            response = await self.bucket.call(
                f"reading {filename}", self.bucket.client.get_object(Bucket=self.location.bucket, Key=object_key)
            )
        except ClientError as e:
            if missing(e):
                raise ContractError(f"{self.location}files/{sha256} ({key}/{filename}): listed but missing") from None
            raise StoreUnavailable(f"reading {filename}: {e}") from None
        return response, sha256

    async def read(self, key: str, filename: str) -> bytes:
        response, _ = await self._get(key, filename)
        async with response["Body"] as body:
            return bytes(await self.bucket.call(f"reading {filename}", body.read()))

    @contextlib.asynccontextmanager
    async def open(self, key: str, filename: str) -> AsyncIterator[Blob]:
        response, sha256 = await self._get(key, filename)
        where = f"{self.location}files/{sha256} ({key}/{filename})"
        async with response["Body"] as body:

            async def chunks() -> AsyncIterator[bytes]:
                # Hashed on the way; each piece goes out only once the next has arrived, and the last
                # only once the whole object matched the manifest's sha256: a client never receives
                # a complete file with other bytes (it gets a cut-off response instead).
                digest = hashlib.sha256()
                iterator = body.content.iter_chunked(CHUNK_BYTES).__aiter__()
                held: bytes | None = None
                while True:
                    try:
                        chunk = await self.bucket.call(f"reading {filename}", iterator.__anext__())
                    except StopAsyncIteration:
                        break
                    digest.update(chunk)
                    if held is not None:
                        yield held
                    held = chunk
                if digest.hexdigest() != sha256:
                    raise ContractError(f"{where} does not match the sha256 its manifest records")
                if held is not None:
                    yield held

            yield Blob(size=int(response["ContentLength"]), chunks=chunks())

    async def url(self, key: str, filename: str) -> str | None:
        object_key, _, _ = self._listed_file(key, filename)
        return str(
            await self.bucket.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.location.bucket, "Key": object_key}, ExpiresIn=PRESIGN_SECONDS
            )
        )

    # Use and pins.

    def touch(self, key: str) -> None:
        # In memory only; flush_last_use writes this replica's record once a minute.
        self._last_used[key] = time.time()
        self._used_dirty = True

    async def flush_last_use(self) -> None:
        if not self._used_dirty:
            return
        self._used_dirty = False
        # Evicted exports drop out of the record, so it stays as large as the store's listing.
        self._last_used = {k: v for k, v in self._last_used.items() if k in self._exports or k in self._pins}
        body = json.dumps({k: round(v, 3) for k, v in sorted(self._last_used.items())}).encode()
        try:
            await self.bucket.call(
                "writing last use",
                self.bucket.client.put_object(
                    Bucket=self.location.bucket, Key=f"{self.location.prefix}used/{self.replica}.json", Body=body
                ),
            )
        except BaseException:
            self._used_dirty = True
            raise

    @contextlib.contextmanager
    def pin(self, key: str) -> Iterator[None]:
        self._pins[key] = self._pins.get(key, 0) + 1
        try:
            yield
        finally:
            self._pins[key] -= 1
            if not self._pins[key]:
                del self._pins[key]

    # Builds across replicas.

    def _lease(self, name: str) -> Lease:
        return Lease(self.bucket, name, self.lease_seconds, self.replica)

    @contextlib.asynccontextmanager
    async def build_claim(self, key: str) -> AsyncIterator[StoredExport | None]:
        lease = self._lease(f"build-{key}")
        while not await lease.acquire():
            # Another replica builds it: wait for its manifest, or for its lease to expire (it died).
            if await self._manifest_exists(key):
                await self.refresh()
                appeared = self.exports().get(key)
                if appeared is not None:
                    yield appeared
                    return
            await asyncio.sleep(self.poll_seconds)
        renewing = asyncio.ensure_future(lease.keep_renewed())
        try:
            # Built and published by another replica just before this one took the lease?
            if await self._manifest_exists(key):
                await self.refresh()
            yield self.exports().get(key)
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            await lease.release()

    async def _manifest_exists(self, key: str) -> bool:
        head = await self.bucket.head_or_none(self._manifest_key(key), f"checking the manifest of {key}")
        return head is not None

    # Publishing.

    def staging_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="relay-staging-"))

    async def check(self) -> None:
        await self.connect()
        await self.close()

    async def publish_copy(self, directory: Path, export: Export) -> int:
        await self.connect()
        try:
            return await self.upload(directory, export)
        finally:
            await self.close()

    async def _put_once(self, object_key: str, body: bytes, where: str) -> bool:
        """Write `body` unless the name exists; True if written, False if it held the same bytes."""
        if await self.bucket.put_if_absent(object_key, body, f"writing {where}") is not None:
            return True
        # Someone wrote it first (a second CI job, a replica building the same commit): fine if the
        # bytes are the same, which the contract promises for one commit.
        existing = await self._read_or_none(object_key)
        if existing is not None and existing != body:
            raise PublishConflict(self._conflict(object_key, where))
        if existing is None:  # removed again in between (an eviction): write it
            return await self._put_once(object_key, body, where)
        return False

    async def publish(self, directory: Path) -> StoredExport:
        export = read_export(directory)
        check_listed_files(directory, export)
        uploaded = await self.upload(directory, export)
        logger.info("published %s to %s (%d objects written)", export.key, self.location, uploaded)
        await self.refresh()
        stored = self._exports.get(export.key)
        if stored is None:
            raise ContractError(f"{self.location}: {export.key} was published but is not listed: {self._reported.get(export.key)}")
        return stored

    async def upload(self, directory: Path, export: Export) -> int:
        """The files the bucket lacks (by content), then the manifest: readers see the export whole.
        Returns how many objects were written (0: the export was there already).

        Under a publish lease, taken before the bucket is looked at and held until the manifest is
        written: the evictor removes no file while one is held, and a publish waits for an eviction
        round under way to end, so a file found here stays until the manifest lists it."""
        loop = asyncio.get_running_loop()
        manifest = await loop.run_in_executor(None, (directory / MANIFEST).read_bytes)
        # Published already (a retried CI job): one read answers it, whatever the export's size.
        existing = await self._read_or_none(self._manifest_key(export.key))
        if existing is not None:
            if existing != manifest:
                raise PublishConflict(self._conflict(self._manifest_key(export.key), str(directory / MANIFEST)))
            return 0
        lease = self._lease(f"publish-{self.replica}-{secrets.token_hex(4)}")
        await lease.acquire()
        renewing = asyncio.ensure_future(lease.keep_renewed())
        try:
            await self._wait_for_eviction_round()
            written = await self._upload_files(directory, export)
            # The header in a key, just before the manifest (a new replica lists it rather than GET
            # the manifest's start); one left by a publish that failed here is removed by the evictor.
            carried = await loop.run_in_executor(None, header_key, export.key, manifest)
            if carried is not None:
                await self.bucket.put(self.bucket.key(HEADERS + carried[0]), carried[1], "writing the header's key")
            wrote_manifest = await self._put_once(self._manifest_key(export.key), manifest, str(directory / MANIFEST))
            # Belt and braces: every file the manifest lists is there now (one listing), or written.
            written += await self._upload_files(directory, export)
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            await lease.release()
        # A manifest published again after an eviction: its evicted copy no longer keeps its files.
        with contextlib.suppress(ClientError, StoreUnavailable):
            await self.bucket.call("clearing an eviction", self.bucket.client.delete_object(
                Bucket=self.location.bucket, Key=self._evicted_key(export.key)))
        return written + int(wrote_manifest)

    async def _upload_files(self, directory: Path, export: Export) -> int:
        """Write each file of the export whose content the bucket lacks (one listing decides); at
        most UPLOADS_AT_ONCE at a time. Unchanged wheels of earlier exports are not written again."""
        await self._list_objects()
        slots = asyncio.Semaphore(UPLOADS_AT_ONCE)
        loop = asyncio.get_running_loop()

        async def one(filename: str, sha256: str, size: int) -> bool:
            if self._objects.get(sha256) == size:
                return False
            async with slots:
                body = await loop.run_in_executor(None, (directory / filename).read_bytes)
                if hashlib.sha256(body).hexdigest() != sha256:
                    raise ContractError(f"{directory / filename} does not match the sha256 its manifest records")
                object_key = self._file_key(sha256)
                if sha256 in self._objects:
                    # Another size under this content's name (a damaged object): replaced.
                    logger.warning("%s%s: %d bytes, not %d: writing it again", self.location, object_key,
                                   self._objects[sha256], size)
                    await self.bucket.call(f"writing {filename}", self.bucket.client.put_object(
                        Bucket=self.location.bucket, Key=object_key, Body=body))
                    return True
                # None: written meanwhile by another publish, the same content.
                return await self.bucket.put_if_absent(object_key, body, f"writing {filename}") is not None

        unique = {sha256: (filename, size) for filename, (sha256, size) in sorted(export.files.items())}
        written = await asyncio.gather(*(one(f, sha256, size) for sha256, (f, size) in unique.items()))
        for sha256, (_, size) in unique.items():
            self._objects[sha256] = size
        return sum(written)

    async def _wait_for_eviction_round(self) -> None:
        """Return once no evictor holds its lease (or it expired): called with a publish lease held,
        so an evictor that starts removing files later sees the publish and leaves them."""
        evictor = self._lease("evictor")
        for _ in range(int(PUBLISH_WAIT_LEASES * self.lease_seconds / self.poll_seconds) + 1):
            holder = await evictor.holder()
            if holder is None or holder[1] <= time.time():
                return
            await asyncio.sleep(self.poll_seconds)
        raise StoreUnavailable(
            f"{self.location}: an eviction round has held leases/evictor for over "
            f"{PUBLISH_WAIT_LEASES * self.lease_seconds:.0f} s; publish again later"
        )

    async def _read_or_none(self, object_key: str) -> bytes | None:
        found = await self.bucket.get_or_none(object_key, f"reading {object_key}")
        return None if found is None else found[0]

    def _conflict(self, object_key: str, where: str) -> str:
        return (
            f"{self.location.bucket}/{object_key} already holds different bytes than {where}: an export is "
            "never changed once published (a dirty export is re-exported under its new commit)"
        )

    # Eviction.

    def _evicted_key(self, key: str) -> str:
        return f"{self.location.prefix}evicted/{key}.json"

    async def last_used(self, forget_before: float | None = None) -> dict[str, float]:
        """Every replica's last use of each export, merged (at least the manifest's write time).
        Records not written since `forget_before` (replicas gone that long) are removed."""
        merged = {key: entry.modified for key, entry in self._listed.items()}
        prefix = f"{self.location.prefix}used/"
        async for item in self._list(prefix):
            if forget_before is not None and item["LastModified"].timestamp() < forget_before:
                # Every time in it is older still: it can no longer keep any export.
                with contextlib.suppress(ClientError):
                    await self.bucket.call("removing an old last-use record", self.bucket.client.delete_object(
                        Bucket=self.location.bucket, Key=item["Key"]))
                continue
            try:
                response = await self.bucket.call("reading last use", self.bucket.client.get_object(Bucket=self.location.bucket, Key=item["Key"]))
                async with response["Body"] as body:
                    record = json.loads(await body.read())
            except (ClientError, ValueError):
                continue
            if not isinstance(record, dict):
                continue
            for key, when in record.items():
                if isinstance(when, (int, float)) and key in merged:
                    merged[key] = max(merged[key], float(when))
        for key, when in self._last_used.items():
            if key in merged:
                merged[key] = max(merged[key], when)
        return merged

    async def evict(self, policy: EvictionPolicy, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        lease = self._lease("evictor")  # one evictor at a time, across replicas
        if not await lease.acquire():
            return []
        try:
            await self.refresh()
            await self.flush_last_use()
            forget = None if policy.max_age_seconds is None else time.time() - policy.max_age_seconds
            # The exports before their records are read: one listed meanwhile (a new replica's fill,
            # a commit asked for by its sha) waits for the next round, judged with its own times.
            exports = dict(self._exports)
            used = await self.last_used(forget_before=forget)
            evicted = to_evict(exports, used, policy, now, lambda key: key in self._pins)
            for key in evicted:
                # The manifest's copy first, then the manifest: a crash between leaves the export
                # listed (the next round evicts it again); the manifest going makes it invisible in
                # one step, and its copy keeps its files for the grace period.
                body = await self._read_or_none(self._manifest_key(key))
                if body is not None:
                    await self.bucket.call("marking an eviction", self.bucket.client.put_object(
                        Bucket=self.location.bucket, Key=self._evicted_key(key), Body=body))
                await self.bucket.call("removing a manifest", self.bucket.client.delete_object(
                    Bucket=self.location.bucket, Key=self._manifest_key(key)))
                logger.info("evicted export %s (its files go in %.0f s unless another export lists them)",
                            key, self.grace_seconds)
            if evicted:
                await self.refresh()
            await self._remove_unlisted_files(lease, now, evicted)
            return evicted
        finally:
            await lease.release()

    async def _publishing(self) -> list[str]:
        """The publishes under way: live publish leases (an expired one is a publisher that died)."""
        live = []
        async for item in self._list(self.bucket.key(f"{LEASES}publish-")):
            name = item["Key"][len(self.bucket.key(LEASES)):]
            holder = await self._lease(name).holder()
            if holder is not None and holder[1] > time.time():
                live.append(holder[0])
        return live

    async def _may_remove_files(self, lease: Lease) -> bool:
        """Whether the evictor may remove files now: no manifest is still being read (a new replica's
        first listing left them for later: what their files are is known only once they are read,
        and reading them here too would GET each whole manifest twice while the replica serves), it
        still holds its lease (renewed now, so a publish that looks sees it) and then no publish is
        under way (one that started since looks at the lease, sees it held, and waits)."""
        if self._filling:
            logger.info("not removing files this round: %d manifests still being read", len(self._filling))
            return False
        if not await lease.renew():
            return False
        publishing = await self._publishing()
        if publishing:
            logger.info("not removing files this round: %d publish(es) under way (%s)",
                        len(publishing), ", ".join(sorted(set(publishing))))
            return False
        return True

    async def _remove_unlisted_files(self, lease: Lease, now: float, fresh: list[str]) -> None:
        """Remove the file objects no manifest lists, nor an evicted one younger than the grace
        period; each with a conditional delete (an object written again since the listing stays)."""
        if not await self._may_remove_files(lease):
            return
        listed: set[str] = set()
        manifests: set[str] = set()
        prefix = f"{self.location.prefix}manifests/"
        async for item in self._list(prefix):
            key = item["Key"][len(prefix):-len(".json")]
            manifests.add(key)
            stored = self._exports.get(key)
            if stored is None:
                # A manifest not served (being validated, damaged): its files are kept all the same.
                names = await self._names_in(item["Key"])
                if names is None:
                    logger.warning("not removing files this round: %s cannot be read", item["Key"])
                    return
                listed |= names
            else:
                listed |= {sha256 for sha256, _ in stored.export.files.values()}
        expired_marks = []
        prefix = f"{self.location.prefix}evicted/"
        async for item in self._list(prefix):
            evicted_now = item["Key"][len(prefix):-len(".json")] in fresh  # its grace starts now
            if not evicted_now and now - item["LastModified"].timestamp() >= self.grace_seconds:
                expired_marks.append(item["Key"])
                continue
            names = await self._names_in(item["Key"])
            if names is None:
                logger.warning("not removing files this round: %s cannot be read", item["Key"])
                return
            listed |= names
        doomed = []
        prefix = f"{self.location.prefix}files/"
        async for item in self._list(prefix):
            if item["Key"][len(prefix):] not in listed:
                doomed.append((item["Key"], item["ETag"]))
        removed = 0
        for start in range(0, len(doomed), DELETES_PER_CHECK):
            # Checked again right before each batch: listing a large bucket takes a while.
            if not await self._may_remove_files(lease):
                break
            for object_key, etag in doomed[start:start + DELETES_PER_CHECK]:
                # False: written again since the listing, or gone already.
                removed += await self.bucket.delete_if_match(object_key, etag, f"removing {object_key}")
        if removed:
            logger.info("removed %d file(s) no export lists", removed)
        for object_key in expired_marks:
            with contextlib.suppress(ClientError):
                await self.bucket.call("clearing an eviction", self.bucket.client.delete_object(
                    Bucket=self.location.bucket, Key=object_key))
        await self._remove_stale_header_keys(manifests, now)

    async def _remove_stale_header_keys(self, manifests: set[str], now: float) -> None:
        """Remove the header keys (`header_keys`) of manifests that are gone (evicted) or never came
        (a publish that failed between the two), once older than the grace period: a publish under
        way writes its manifest right after its header's key."""
        prefix = self.bucket.key(HEADERS)
        stale = [
            (item["Key"], item["ETag"]) async for item in self._list(prefix)
            if key_of(item["Key"][len(prefix):]) not in manifests
            and now - item["LastModified"].timestamp() >= self.grace_seconds
        ]
        for object_key, etag in stale:
            await self.bucket.delete_if_match(object_key, etag, f"removing {object_key}")
        if stale:
            logger.info("removed %d header key(s) of manifests that are gone", len(stale))

    async def _names_in(self, object_key: str) -> set[str] | None:
        """The sha256s a manifest (or an evicted one's copy) lists, read leniently: any well-formed
        sha256 of a file it names counts. None if it cannot be read as JSON."""
        raw = await self._read_or_none(object_key)
        if raw is None:
            return set()
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        dists = data.get("dists") if isinstance(data, dict) else None
        names = set()
        for dist in dists if isinstance(dists, list) else ():
            if isinstance(dist, dict):
                names |= {v for k in ("sha256", "metadata_sha256") if isinstance(v := dist.get(k), str)}
        return names

"""Exports in an S3-compatible bucket: listing, streamed files, conditional publishing, leases, eviction.

Layout under s3://BUCKET/PREFIX/ (docs/deployment.md):
    manifests/<key>.json          an export's manifest: written last, removed first
    exports/<key>/<filename>      its wheels and .metadata files
    leases/<name>                 who builds a commit or evicts now, until when
    used/<replica>.json           each replica's last use of each export (written once a minute)
    evicted/<key>                 an export whose manifest was removed: files go after a grace period

The client is aiobotocore: botocore's credential chain, endpoint configuration, signing and retries
(the standard AWS way: environment, shared config, profiles, AWS_ENDPOINT_URL) on aiohttp, the loop
the relay already runs, so a slow store never blocks a thread per request.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from typing import Any, AsyncIterator, Awaitable, Iterator, Mapping, Sequence, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from relay.contract import MANIFEST, ContractError, Export, parse_manifest, read_export
from relay.store import (
    CHUNK_BYTES,
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
)

logger = logging.getLogger("relay.s3store")

T = TypeVar("T")

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
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
PRESIGN_SECONDS = 300


@functools.lru_cache(maxsize=1)
def _loader() -> Any:
    return get_session().get_component("data_loader")


def _session() -> Any:
    # A new session reads credentials afresh; the model loader is shared, as it caches the S3 service
    # model, which takes ~1 s to load.
    session = get_session()
    session.register_component("data_loader", _loader())
    return session


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


@dataclass(frozen=True)
class _Listed:
    etag: str
    modified: float


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _missing(e: ClientError) -> bool:
    return _code(e) in ("NoSuchKey", "404", "NotFound") or _status(e) == 404


def _precondition_failed(e: ClientError) -> bool:
    # 409: a concurrent conditional write to the same key is in progress (AWS); the other one wins.
    return _code(e) in ("PreconditionFailed", "ConditionalRequestConflict") or _status(e) in (409, 412)


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
    ) -> None:
        self.location = location
        self.scan_interval = scan_interval
        self.replica = replica or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._exports: dict[str, StoredExport] = {}
        self._listed: dict[str, _Listed] = {}
        self._reported: dict[str, str] = {}
        self._generation = 0
        self._last_used: dict[str, float] = {}
        self._used_dirty = False
        self._pins: dict[str, int] = {}
        self._missed: dict[str, float] = {}
        self._outage: str | None = None

    # Keys in the bucket.

    def _manifest_key(self, key: str) -> str:
        return f"{self.location.prefix}manifests/{key}.json"

    def _file_key(self, key: str, filename: str) -> str:
        return f"{self.location.prefix}exports/{key}/{filename}"

    def _lease_key(self, name: str) -> str:
        return f"{self.location.prefix}leases/{name}"

    # Connection and start-up checks.

    @property
    def description(self) -> str:
        return str(self.location)

    async def connect(self) -> None:
        """Open the client and check the bucket works for the relay (no background work)."""
        if self._client is not None:
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
            self._client = await self._stack.enter_async_context(session.create_client("s3", config=config))
        except BotoCoreError as e:
            await self._stack.aclose()
            raise StoreConfigError(f"{self.location}: cannot make an S3 client: {e}") from None
        try:
            await self._check()
        except BaseException:
            await self.close()
            raise

    async def _check(self) -> None:
        where = str(self.location)
        endpoint = self._client.meta.endpoint_url
        try:
            await self._client.head_bucket(Bucket=self.location.bucket)
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
            status = _status(e)
            if status == 404 or _code(e) == "NoSuchBucket":
                raise StoreConfigError(
                    f"{where}: bucket {self.location.bucket!r} does not exist at {endpoint}; create it "
                    f"(e.g. `aws s3 mb s3://{self.location.bucket}`) or fix the name"
                ) from None
            if status in (401, 403):
                raise StoreConfigError(
                    f"{where}: the store at {endpoint} refused the credentials ({_code(e) or status}); check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and that they may read "
                    "and write the bucket"
                ) from None
            raise StoreConfigError(f"{where}: checking the bucket at {endpoint} failed: {e}") from None
        # Publishing and leases rely on `If-None-Match: *`: a store that ignores it would let two
        # writers both win. Probe it once with a throwaway object.
        probe = f"{self.location.prefix}leases/probe-{self.replica}-{secrets.token_hex(4)}"
        try:
            await self._client.put_object(Bucket=self.location.bucket, Key=probe, Body=b"1", IfNoneMatch="*")
            try:
                await self._client.put_object(Bucket=self.location.bucket, Key=probe, Body=b"2", IfNoneMatch="*")
            except ClientError as e:
                if not _precondition_failed(e):
                    raise
            else:
                raise StoreConfigError(
                    f"{where}: the store at {endpoint} ignores conditional writes (If-None-Match: *), which "
                    "the relay needs so that two writers never both win; use a store that supports them "
                    "(AWS S3, MinIO, SeaweedFS, Ceph RGW >= 18) or a directory store"
                )
            await self._client.delete_object(Bucket=self.location.bucket, Key=probe)
        except ClientError as e:
            if _status(e) in (401, 403):
                raise StoreConfigError(
                    f"{where}: the credentials may read but not write the bucket ({_code(e)}); the relay "
                    "writes manifests, leases and last-use records: grant s3:PutObject and s3:DeleteObject"
                ) from None
            raise StoreConfigError(f"{where}: a test write to the bucket failed: {e}") from None

    async def start(self) -> None:
        await self.connect()
        await self.refresh()
        self._tasks = [
            asyncio.ensure_future(self._every(self.scan_interval, self.refresh)),
            asyncio.ensure_future(self._every(TOUCH_INTERVAL_SECONDS, self.flush_last_use)),
        ]

    async def _every(self, interval: float, work: Any) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await work()
            except StoreUnavailable:
                pass  # reported by _call; the next round retries
            except Exception:  # noqa: BLE001 - background work must not stop
                logger.exception("%s: background work failed", self.location)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            with contextlib.suppress(StoreUnavailable):
                await self.flush_last_use()
        if self._stack is not None:
            await self._stack.aclose()
        self._client = None
        self._stack = None

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        """One request; an outage (no connection, a timeout, a 5xx, refused credentials) becomes
        StoreUnavailable and is logged once until the store answers again."""
        try:
            result = await call
        except ClientError as e:
            status = _status(e)
            if status >= 500 or status in (401, 403):
                self._down(f"{what}: {e}")
            raise
        except (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            self._down(f"{what}: {e or type(e).__name__}")
        if self._outage is not None:
            logger.warning("%s: the store answers again", self.location)
            self._outage = None
        return result

    def unavailable(self) -> str | None:
        # Set by the last request that failed (a listing runs every scan_interval), cleared by the
        # next one that succeeds.
        return None if self._outage is None else f"the object store is unavailable: {self._outage}"

    def _down(self, message: str) -> None:
        if self._outage is None:
            logger.warning("%s: the store is unavailable: %s", self.location, message)
        self._outage = message
        raise StoreUnavailable(message)

    # Listing.

    @property
    def generation(self) -> int:
        return self._generation

    def exports(self) -> Mapping[str, StoredExport]:
        return self._exports

    @property
    def problems(self) -> Mapping[str, str]:
        return dict(self._reported)

    async def _list(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.location.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = await self._call(f"listing {prefix}", self._client.list_objects_v2(**kwargs))
            for item in page.get("Contents", ()):
                yield item
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    async def refresh(self) -> None:
        """List the manifests; read the new or changed ones and check their files are all there."""
        prefix = f"{self.location.prefix}manifests/"
        listed: dict[str, _Listed] = {}
        async for item in self._list(prefix):
            name = item["Key"][len(prefix):]
            if name.endswith(".json") and "/" not in name and not name.startswith("."):
                listed[name[: -len(".json")]] = _Listed(item["ETag"], item["LastModified"].timestamp())
        found: dict[str, StoredExport] = {}
        for key, entry in listed.items():
            previous = self._exports.get(key)
            if previous is not None and self._listed.get(key) == entry:
                found[key] = previous
                continue
            stored = await self._load(key)
            if stored is not None:
                found[key] = stored
        if found.keys() != self._exports.keys() or any(found[k] is not self._exports[k] for k in found):
            self._generation += 1
        self._exports = found
        self._listed = {k: v for k, v in listed.items() if k in found}
        for gone in set(self._reported) - set(listed):
            del self._reported[gone]

    async def find(self, key: str) -> StoredExport | None:
        stored = self._exports.get(key)
        if stored is not None or not _KEY.fullmatch(key):
            return stored
        now = time.monotonic()
        if now - self._missed.get(key, float("-inf")) < MISS_SECONDS:
            return None
        self._missed[key] = now
        if len(self._missed) > 4096:  # a flood of made-up commits must not grow this without end
            self._missed = {k: t for k, t in self._missed.items() if now - t < MISS_SECONDS}
        try:
            head = await self._call(
                "checking a manifest",
                self._client.head_object(Bucket=self.location.bucket, Key=self._manifest_key(key)),
            )
        except ClientError as e:
            if _missing(e):
                return None
            raise StoreUnavailable(f"checking the manifest of {key}: {e}") from None
        stored = await self._load(key)
        if stored is not None and key not in self._exports:
            self._exports = {**self._exports, key: stored}
            self._listed = {**self._listed, key: _Listed(head["ETag"], head["LastModified"].timestamp())}
            self._generation += 1
        return self._exports.get(key)

    async def _load(self, key: str) -> StoredExport | None:
        where = f"{self.location}manifests/{key}.json"
        try:
            response = await self._call(
                f"reading {where}",
                self._client.get_object(Bucket=self.location.bucket, Key=self._manifest_key(key)),
            )
            async with response["Body"] as body:
                raw = await body.read()
        except ClientError as e:
            if _missing(e):
                return None  # evicted between the listing and now
            self._report(key, f"skipping {where}: cannot be read ({e})")
            return None
        try:
            export = parse_manifest(raw, where)
            if export.key != key:
                raise ContractError(f"{where}: names commit {export.key!r} but is stored as {key!r}")
            sizes = {}
            file_prefix = self._file_key(key, "")
            async for item in self._list(file_prefix):
                sizes[item["Key"][len(file_prefix):]] = int(item["Size"])
            for dist in export.dists:
                for filename, size in ((dist.filename, dist.size), (dist.metadata_filename, dist.metadata_size)):
                    if filename not in sizes:
                        raise ContractError(f"{self.location}exports/{key}/{filename}: listed in the manifest but missing")
                    if sizes[filename] != size:
                        raise ContractError(
                            f"{self.location}exports/{key}/{filename}: {sizes[filename]} bytes, the manifest says {size}"
                        )
        except ContractError as e:
            self._report(key, f"skipping export: {e}")
            return None
        self._reported.pop(key, None)
        return StoredExport(export=export, size=len(raw) + sum(d.size + d.metadata_size for d in export.dists))

    def _report(self, key: str, message: str) -> None:
        if self._reported.get(key) != message:
            self._reported[key] = message
            logger.warning("%s", message)

    # Files.

    def _listed_file(self, key: str, filename: str) -> str:
        stored = self._exports.get(key)
        if stored is None or filename not in stored.export.filenames:
            raise NotListed(f"{key}/{filename}")
        return self._file_key(key, filename)

    async def _get(self, key: str, filename: str) -> Any:
        object_key = self._listed_file(key, filename)
        try:
            return await self._call(
                f"reading {filename}", self._client.get_object(Bucket=self.location.bucket, Key=object_key)
            )
        except ClientError as e:
            if _missing(e):
                raise ContractError(f"{self.location}exports/{key}/{filename}: listed but missing") from None
            raise StoreUnavailable(f"reading {filename}: {e}") from None

    async def read(self, key: str, filename: str) -> bytes:
        response = await self._get(key, filename)
        try:
            async with response["Body"] as body:
                return bytes(await self._call(f"reading {filename}", body.read()))
        except StoreUnavailable:
            raise

    @contextlib.asynccontextmanager
    async def open(self, key: str, filename: str) -> AsyncIterator[Blob]:
        response = await self._get(key, filename)
        async with response["Body"] as body:

            async def chunks() -> AsyncIterator[bytes]:
                iterator = body.content.iter_chunked(CHUNK_BYTES).__aiter__()
                while True:
                    try:
                        chunk = await self._call(f"reading {filename}", iterator.__anext__())
                    except StopAsyncIteration:
                        return
                    yield chunk

            yield Blob(size=int(response["ContentLength"]), chunks=chunks())

    async def url(self, key: str, filename: str) -> str | None:
        object_key = self._listed_file(key, filename)
        return str(
            await self._client.generate_presigned_url(
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
            await self._call(
                "writing last use",
                self._client.put_object(
                    Bucket=self.location.bucket, Key=f"{self.location.prefix}used/{self.replica}.json", Body=body
                ),
            )
        except BaseException:
            self._used_dirty = True
            raise

    @contextlib.contextmanager
    def lease(self, key: str) -> Iterator[None]:
        self._pins[key] = self._pins.get(key, 0) + 1
        try:
            yield
        finally:
            self._pins[key] -= 1
            if not self._pins[key]:
                del self._pins[key]

    # Builds across replicas.

    @contextlib.asynccontextmanager
    async def build_lease(self, key: str) -> AsyncIterator[None]:
        from relay.leases import Lease

        lease = Lease(self, f"build-{key}", self.lease_seconds)
        while not await lease.acquire():
            # Another replica builds it: wait for its manifest, or for its lease to expire (it died).
            if await self._manifest_exists(key):
                await self.refresh()
                if key in self._exports:
                    yield
                    return
            await asyncio.sleep(self.poll_seconds)
        renewing = asyncio.ensure_future(self._keep_renewed(lease))
        try:
            # Built and published by another replica just before this one took the lease?
            if await self._manifest_exists(key):
                await self.refresh()
            yield
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            await lease.release()

    async def _keep_renewed(self, lease: Any) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await lease.renew():
                    return
            except StoreUnavailable:
                pass  # the next renewal retries; a long outage lets another replica take over

    async def _manifest_exists(self, key: str) -> bool:
        try:
            await self._call(
                "checking a manifest",
                self._client.head_object(Bucket=self.location.bucket, Key=self._manifest_key(key)),
            )
        except ClientError as e:
            if _missing(e):
                return False
            raise StoreUnavailable(f"checking the manifest of {key}: {e}") from None
        return True

    # Publishing.

    def staging_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="relay-staging-"))

    async def _put_once(self, object_key: str, body: bytes, where: str) -> bool:
        """Write `body` unless the name exists; True if written, False if it held the same bytes."""
        sha256 = hashlib.sha256(body).hexdigest()
        try:
            await self._call(
                f"writing {where}",
                self._client.put_object(
                    Bucket=self.location.bucket, Key=object_key, Body=body, IfNoneMatch="*",
                    Metadata={"sha256": sha256},
                ),
            )
            return True
        except ClientError as e:
            if not _precondition_failed(e):
                raise StoreUnavailable(f"writing {where}: {e}") from None
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
        logger.info("published %s to %s (%d files written)", export.key, self.location, uploaded)
        await self.refresh()
        stored = self._exports.get(export.key)
        if stored is None:
            raise ContractError(f"{self.location}: {export.key} was published but is not listed: {self._reported.get(export.key)}")
        return stored

    async def upload(self, directory: Path, export: Export) -> int:
        """Files first, at most UPLOADS_AT_ONCE at a time, then the manifest: readers see it whole.
        Returns how many objects were written (0: the export was there already)."""
        loop = asyncio.get_running_loop()
        manifest = await loop.run_in_executor(None, (directory / MANIFEST).read_bytes)
        # Published already (a retried CI job): one read answers it, whatever the export's size.
        existing = await self._read_or_none(self._manifest_key(export.key))
        if existing is not None:
            if existing != manifest:
                raise PublishConflict(self._conflict(self._manifest_key(export.key), str(directory / MANIFEST)))
            return 0
        # Files an interrupted publish already wrote are skipped when their MD5 ETag matches (a store
        # whose ETags are not MD5s gets a conditional write and a comparison instead).
        present: dict[str, str] = {}
        prefix = self._file_key(export.key, "")
        async for item in self._list(prefix):
            present[item["Key"][len(prefix):]] = str(item.get("ETag", "")).strip('"')
        slots = asyncio.Semaphore(UPLOADS_AT_ONCE)

        async def one(filename: str) -> bool:
            async with slots:
                body = await loop.run_in_executor(None, (directory / filename).read_bytes)
                if present.get(filename) == hashlib.md5(body).hexdigest():
                    return False
                return await self._put_once(self._file_key(export.key, filename), body, str(directory / filename))

        written = await asyncio.gather(*(one(f) for f in sorted(export.filenames)))
        wrote_manifest = await self._put_once(self._manifest_key(export.key), manifest, str(directory / MANIFEST))
        # A manifest published again after an eviction cancels the pending removal of its files.
        with contextlib.suppress(ClientError):
            await self._call(
                "clearing an eviction", self._client.delete_object(Bucket=self.location.bucket, Key=self._evicted_key(export.key))
            )
        return sum(written) + int(wrote_manifest)

    async def _read_or_none(self, object_key: str) -> bytes | None:
        try:
            response = await self._call(
                f"reading {object_key}", self._client.get_object(Bucket=self.location.bucket, Key=object_key)
            )
        except ClientError as e:
            if _missing(e):
                return None
            raise StoreUnavailable(f"reading {object_key}: {e}") from None
        async with response["Body"] as body:
            return bytes(await body.read())

    def _conflict(self, object_key: str, where: str) -> str:
        return (
            f"{self.location.bucket}/{object_key} already holds different bytes than {where}: an export is "
            "never changed once published (a dirty export is re-exported under its new commit)"
        )

    # Eviction.

    def _evicted_key(self, key: str) -> str:
        return f"{self.location.prefix}evicted/{key}"

    async def last_used(self, forget_before: float | None = None) -> dict[str, float]:
        """Every replica's last use of each export, merged (at least the manifest's write time).
        Records not written since `forget_before` (replicas gone that long) are removed."""
        merged = {key: entry.modified for key, entry in self._listed.items()}
        prefix = f"{self.location.prefix}used/"
        async for item in self._list(prefix):
            if forget_before is not None and item["LastModified"].timestamp() < forget_before:
                # Every time in it is older still: it can no longer keep any export.
                with contextlib.suppress(ClientError):
                    await self._call("removing an old last-use record", self._client.delete_object(
                        Bucket=self.location.bucket, Key=item["Key"]))
                continue
            try:
                response = await self._call("reading last use", self._client.get_object(Bucket=self.location.bucket, Key=item["Key"]))
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
        from relay.leases import Lease  # one evictor at a time, across replicas

        now = time.time() if now is None else now
        lease = Lease(self, "evictor", self.lease_seconds)
        if not await lease.acquire():
            return []
        try:
            await self.refresh()
            await self.flush_last_use()
            forget = None if policy.max_age_seconds is None else time.time() - policy.max_age_seconds
            used = await self.last_used(forget_before=forget)
            exports = dict(self._exports)
            total = sum(s.size for s in exports.values())
            evicted: list[str] = []
            for key in sorted(exports, key=lambda k: used.get(k, 0.0)):
                too_old = policy.max_age_seconds is not None and now - used.get(key, 0.0) > policy.max_age_seconds
                too_big = policy.max_size_bytes is not None and total > policy.max_size_bytes
                if not (too_old or too_big) or key in self._pins:
                    continue
                # Marker first, then the manifest: a crash between leaves files that the next round
                # removes; the manifest going makes the export invisible in one step.
                await self._call("marking an eviction", self._client.put_object(
                    Bucket=self.location.bucket, Key=self._evicted_key(key), Body=str(now).encode()))
                await self._call("removing a manifest", self._client.delete_object(
                    Bucket=self.location.bucket, Key=self._manifest_key(key)))
                evicted.append(key)
                total -= exports[key].size
                logger.info("evicted export %s (its files go in %.0f s)", key, self.grace_seconds)
            await self._remove_evicted_files(now, evicted)
            if evicted:
                await self.refresh()
            return evicted
        finally:
            await lease.release()

    async def _remove_evicted_files(self, now: float, fresh: Sequence[str]) -> None:
        prefix = f"{self.location.prefix}evicted/"
        async for item in self._list(prefix):
            key = item["Key"][len(prefix):]
            if now - item["LastModified"].timestamp() < self.grace_seconds:
                continue
            if key in fresh:
                continue  # evicted in this round: its grace period starts now
            if not await self._manifest_exists(key):
                file_prefix = self._file_key(key, "")
                names = [i["Key"] async for i in self._list(file_prefix)]
                for start in range(0, len(names), 1000):
                    batch = [{"Key": n} for n in names[start:start + 1000]]
                    await self._call("removing files", self._client.delete_objects(
                        Bucket=self.location.bucket, Delete={"Objects": batch, "Quiet": True}))
            await self._call("clearing an eviction", self._client.delete_object(
                Bucket=self.location.bucket, Key=item["Key"]))

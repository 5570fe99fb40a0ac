"""Where exports live: the Store interface and the on-disk default (listing, files, leases, eviction)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import stat
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncContextManager, AsyncIterator, Iterator, Mapping

from relay.contract import MANIFEST, ContractError, Export, read_export

logger = logging.getLogger("relay.store")

# Names the relay creates in the store root; like every dot-name, readers ignore them.
STAGING_PREFIX = ".relay-tmp-"
EVICTING_PREFIX = ".relay-evict-"
BUILD_LOCK_PREFIX = ".relay-build-"
# Staging left behind by a crashed relay is removed after this long.
STALE_STAGING_SECONDS = 24 * 3600
# Last use is written to the export directory's mtime at most this often, so a busy export costs no
# syscall per request but the time still survives a restart.
TOUCH_INTERVAL_SECONDS = 60.0
# Large files are sent in pieces of this size.
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class StoredExport:
    """An export the store holds: the parsed manifest plus what the store knows about it."""

    export: Export
    size: int


@dataclass(frozen=True)
class EvictionPolicy:
    max_age_seconds: float | None = 30 * 24 * 3600.0
    max_size_bytes: int | None = None


class StoreUnavailable(Exception):
    """The store cannot be reached now (a network or service outage): answered 503, retried later."""


class StoreConfigError(Exception):
    """A store that cannot work as configured (wrong credentials, no bucket...): start-up stops."""


class PublishConflict(Exception):
    """The store holds different bytes under a name being published: an export is never changed."""


class NotListed(KeyError):
    """A file name the export's manifest does not list: the store never serves it."""


@dataclass(frozen=True)
class Blob:
    """One file being read from a store: its size and its bytes, piece by piece."""

    size: int
    chunks: AsyncIterator[bytes]


class Store(ABC):
    """Holds exports, keyed by `Export.key` (the sha, or `<sha>.dirty`), and their files by name.

    It speaks keys, bytes and streams: a caller never learns where (a directory, a bucket) the bytes
    live. Listing is synchronous and answered from memory (the relay asks on every request); reads,
    publishing and eviction are coroutines.
    """

    @abstractmethod
    def exports(self) -> Mapping[str, StoredExport]:
        """The complete, valid exports, by key. Cheap to call per request."""

    @property
    @abstractmethod
    def generation(self) -> int:
        """Changes whenever the set of exports changes; caches key on it."""

    @property
    def problems(self) -> Mapping[str, str]:
        """Exports that are skipped, with the reason (logged once each)."""
        return {}

    @property
    def description(self) -> str:
        """Where the store is, for log lines and messages."""
        return type(self).__name__

    async def start(self) -> None:
        """Connect and check the store is usable; raise StoreConfigError saying what to fix."""

    async def close(self) -> None:
        """Release connections and stop background work."""

    async def refresh(self) -> None:
        """List the exports again now instead of at the next interval."""

    async def find(self, key: str) -> StoredExport | None:
        """One export, looked for in the backing storage now if the listing does not have it yet (a
        request for a commit just published need not wait for the next listing)."""
        return self.exports().get(key)

    @abstractmethod
    async def read(self, key: str, filename: str) -> bytes:
        """A file the export's manifest lists (NotListed for any other name), whole."""

    @abstractmethod
    def open(self, key: str, filename: str) -> AsyncContextManager[Blob]:
        """A file the export's manifest lists (NotListed for any other name), as a stream."""

    async def url(self, key: str, filename: str) -> str | None:
        """A short-lived URL a client may fetch the file from directly, where the store has one."""
        return None

    @abstractmethod
    def touch(self, key: str) -> None:
        """Record that the export was used now (cheap: stores batch what they write)."""

    @abstractmethod
    def lease(self, key: str) -> contextlib.AbstractContextManager[None]:
        """While held, this process does not evict the export (it is being served or built)."""

    @abstractmethod
    def build_lease(self, key: str) -> AsyncContextManager[None]:
        """Enter when this process may build `key`: it holds the build lease (one builder across
        processes and replicas), or the export has appeared meanwhile (check `exports()` inside)."""

    @abstractmethod
    def staging_dir(self) -> Path:
        """A fresh local directory where a new export can be written before it is published."""

    @abstractmethod
    async def publish(self, directory: Path) -> StoredExport:
        """Validate a complete local export directory and add it to the store so that it appears
        whole or not at all. The same export published twice is kept once."""

    @abstractmethod
    async def evict(self, policy: EvictionPolicy, now: float | None = None) -> list[str]:
        """Remove exports unused for too long or beyond the size cap; return the evicted keys."""


def check_files(directory: Path, export: Export) -> int:
    """Every listed file must be a regular file of the listed size: catches half-copied exports.
    Returns the export's size in bytes."""
    total = 0
    for dist in export.dists:
        for filename, size in ((dist.filename, dist.size), (dist.metadata_filename, dist.metadata_size)):
            path = directory / filename
            try:
                st = path.lstat()
            except OSError:
                raise ContractError(f"{path}: listed in the manifest but missing") from None
            if not stat.S_ISREG(st.st_mode):
                raise ContractError(f"{path}: not a regular file (symlinks are refused)")
            if st.st_size != size:
                raise ContractError(f"{path}: {st.st_size} bytes, the manifest says {size}")
            total += size
    for dirpath, _, filenames in os.walk(directory / "simple"):
        total += sum(os.lstat(os.path.join(dirpath, f)).st_size for f in filenames)
    return total + (directory / MANIFEST).lstat().st_size


class DiskStore(Store):
    """A directory whose children are export directories, exactly as the goal writes them."""

    def __init__(self, root: Path, scan_interval: float = 1.0) -> None:
        self.root = root.resolve()
        self.scan_interval = scan_interval
        self._lock = threading.RLock()
        self._exports: dict[str, StoredExport] = {}
        # key -> (manifest mtime_ns, size): a changed manifest is read again.
        self._stamps: dict[str, tuple[int, int]] = {}
        # Problems already logged, so a corrupt export is reported once, not per request.
        self._reported: dict[str, str] = {}
        self._generation = 0
        self._scanned_at = float("-inf")
        self._last_used: dict[str, float] = {}
        self._touched_at: dict[str, float] = {}
        self._leases: dict[str, int] = {}

    # Listing.

    @property
    def generation(self) -> int:
        self._refresh()
        return self._generation

    def exports(self) -> Mapping[str, StoredExport]:
        self._refresh()
        return self._exports

    def rescan(self) -> None:
        """Scan now (after a publish or an eviction) instead of at the next interval."""
        with self._lock:
            self._scanned_at = float("-inf")
        self._refresh()

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._scanned_at < self.scan_interval:
            return
        with self._lock:
            if now - self._scanned_at < self.scan_interval:
                return
            self._scanned_at = now
            self._scan()

    def _scan(self) -> None:
        found: dict[str, StoredExport] = {}
        stamps: dict[str, tuple[int, int]] = {}
        try:
            entries = list(os.scandir(self.root))
        except OSError as e:
            self._report("", f"store {self.root} cannot be read: {e.strerror}")
            entries = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            stored = self._load(entry, stamps)
            if stored is not None:
                found[entry.name] = stored
        if found.keys() != self._exports.keys() or any(
            found[k] is not self._exports[k] for k in found
        ):
            self._generation += 1
        self._exports = found
        self._stamps = stamps
        for gone in set(self._reported) - {e.name for e in entries} - {""}:
            del self._reported[gone]

    def _load(self, entry: os.DirEntry[str], stamps: dict[str, tuple[int, int]]) -> StoredExport | None:
        name = entry.name
        if entry.is_symlink():
            self._report(name, f"skipping {entry.path}: a symlink (the store serves only real directories)")
            return None
        if not entry.is_dir(follow_symlinks=False):
            return None
        manifest = Path(entry.path, MANIFEST)
        try:
            st = manifest.lstat()
        except FileNotFoundError:
            self._report(name, f"skipping {entry.path}: no {MANIFEST} (incomplete or not an export)")
            return None
        except OSError as e:
            self._report(name, f"skipping {entry.path}: {MANIFEST} cannot be read ({e.strerror})")
            return None
        if not stat.S_ISREG(st.st_mode):
            self._report(name, f"skipping {entry.path}: {MANIFEST} is not a regular file")
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        previous = self._exports.get(name)
        if previous is not None and self._stamps.get(name) == stamp:
            stamps[name] = stamp
            return previous
        try:
            export = read_export(Path(entry.path))
            size = check_files(Path(entry.path), export)
        except ContractError as e:
            self._report(name, f"skipping export: {e}")
            return None
        self._reported.pop(name, None)
        stamps[name] = stamp
        return StoredExport(export=export, size=size)

    @property
    def problems(self) -> Mapping[str, str]:
        """Entries of the store root that are skipped, with the reason (logged once each)."""
        self._refresh()
        return dict(self._reported)

    def _report(self, name: str, message: str) -> None:
        if self._reported.get(name) != message:
            self._reported[name] = message
            logger.warning("%s", message)

    @property
    def description(self) -> str:
        return str(self.root)

    async def refresh(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.rescan)

    # Files.

    def _path(self, key: str, filename: str) -> Path:
        stored = self.exports().get(key)
        if stored is None or filename not in stored.export.filenames:
            raise NotListed(f"{key}/{filename}")
        # The name came from the manifest, was validated as one plain segment, and was checked to be a
        # regular file when the export was loaded; joining it cannot leave the export directory.
        return self.root / key / filename

    def _open_fd(self, path: Path) -> int:
        try:
            # O_NOFOLLOW: a wheel swapped for a symlink after the scan is refused, not followed.
            return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as e:
            raise ContractError(f"{path}: cannot be read ({e.strerror})") from None

    def _read(self, path: Path) -> bytes:
        fd = self._open_fd(path)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    async def read(self, key: str, filename: str) -> bytes:
        path = self._path(key, filename)
        return await asyncio.get_running_loop().run_in_executor(None, self._read, path)

    @contextlib.asynccontextmanager
    async def open(self, key: str, filename: str) -> AsyncIterator[Blob]:
        path = self._path(key, filename)
        loop = asyncio.get_running_loop()
        fd = await loop.run_in_executor(None, self._open_fd, path)
        f = os.fdopen(fd, "rb")
        try:
            size = os.fstat(f.fileno()).st_size

            async def chunks() -> AsyncIterator[bytes]:
                while True:
                    chunk = await loop.run_in_executor(None, f.read, CHUNK_BYTES)
                    if not chunk:
                        return
                    yield chunk

            yield Blob(size=size, chunks=chunks())
        finally:
            f.close()

    # Use, leases and eviction.

    def touch(self, key: str) -> None:
        now = time.time()
        self._last_used[key] = now
        if now - self._touched_at.get(key, 0.0) >= TOUCH_INTERVAL_SECONDS:
            self._touched_at[key] = now
            with contextlib.suppress(OSError):
                os.utime(self.root / key, (now, now), follow_symlinks=False)

    def last_used(self, key: str) -> float:
        try:
            on_disk = (self.root / key).lstat().st_mtime
        except OSError:
            on_disk = 0.0
        return max(on_disk, self._last_used.get(key, 0.0))

    @contextlib.contextmanager
    def lease(self, key: str) -> Iterator[None]:
        with self._lock:
            self._leases[key] = self._leases.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._leases[key] -= 1
                if not self._leases[key]:
                    del self._leases[key]

    def leased(self, key: str) -> bool:
        return key in self._leases

    @contextlib.asynccontextmanager
    async def build_lease(self, key: str) -> AsyncIterator[None]:
        # A file lock beside the exports: every worker process of every relay on this directory
        # agrees. Taken off the event loop; the kernel drops it when a process dies.
        path = self.root / f"{BUILD_LOCK_PREFIX}{key}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.get_running_loop().run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        try:
            self.rescan()
            yield
        finally:
            # Unlinked while still held: a process already waiting on this file re-checks the
            # store once it gets the lock, and later requests find the export there first.
            with contextlib.suppress(OSError):
                os.unlink(path)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def staging_dir(self) -> Path:
        path = self.root / (STAGING_PREFIX + secrets.token_hex(8))
        path.mkdir(parents=True)
        return path

    async def publish(self, directory: Path) -> StoredExport:
        return await asyncio.get_running_loop().run_in_executor(None, self.publish_now, directory)

    def publish_now(self, directory: Path) -> StoredExport:
        """`publish` for callers without an event loop (the directory is renamed into the root)."""
        export = read_export(directory)
        size = check_files(directory, export)
        target = self.root / export.key
        try:
            os.rename(directory, target)
        except OSError:
            # Someone (a push, another relay) published the same commit first: the contract says the
            # bytes are identical, so theirs stands.
            if not (target / MANIFEST).is_file():
                raise
            logger.info("export %s was already in the store; keeping the existing one", export.key)
        self.touch(export.key)
        self.rescan()
        return self._exports.get(export.key) or StoredExport(export=export, size=size)

    async def evict(self, policy: EvictionPolicy, now: float | None = None) -> list[str]:
        return await asyncio.get_running_loop().run_in_executor(None, self.evict_now, policy, now)

    def evict_now(self, policy: EvictionPolicy, now: float | None = None) -> list[str]:
        """`evict` for callers without an event loop."""
        now = time.time() if now is None else now
        self._remove_stale_staging(now)
        exports = self.exports()
        by_age = sorted(exports, key=self.last_used)
        evicted: list[str] = []
        total = sum(s.size for s in exports.values())
        for key in by_age:
            too_old = (
                policy.max_age_seconds is not None and now - self.last_used(key) > policy.max_age_seconds
            )
            too_big = policy.max_size_bytes is not None and total > policy.max_size_bytes
            if not (too_old or too_big):
                continue
            if self.leased(key):
                continue
            if self._remove(key):
                evicted.append(key)
                total -= exports[key].size
        if evicted:
            self.rescan()
        return evicted

    def _remove(self, key: str) -> bool:
        with self._lock:
            if self.leased(key):
                return False
            # Rename first: readers stop seeing the export in one step, then the files go.
            doomed = self.root / (EVICTING_PREFIX + key + "-" + secrets.token_hex(4))
            try:
                os.rename(self.root / key, doomed)
            except OSError as e:
                logger.warning("cannot evict export %s: %s", key, e.strerror)
                return False
        shutil.rmtree(doomed, ignore_errors=True)
        self._last_used.pop(key, None)
        self._touched_at.pop(key, None)
        logger.info("evicted export %s", key)
        return True

    def _remove_stale_staging(self, now: float) -> None:
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(EVICTING_PREFIX) or (
                entry.name.startswith(STAGING_PREFIX)
                and now - entry.stat(follow_symlinks=False).st_mtime > STALE_STAGING_SECONDS
            ):
                shutil.rmtree(entry.path, ignore_errors=True)


class FileCache:
    """Small immutable files (wheels, .metadata) in memory, keyed by their sha256, least recently
    used out first.

    An export's files never change under their manifest's hashes, so a hit is always right, and a
    dirty re-export with new bytes simply has new keys. Files are checked against the manifest's
    sha256 once, when they are first read.
    """

    def __init__(self, max_bytes: int = 128 * 1024 * 1024, max_file_bytes: int = 4 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.max_file_bytes = min(max_file_bytes, max_bytes)
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0

    def fits(self, size: int) -> bool:
        return size <= self.max_file_bytes

    def get(self, sha256: str) -> bytes | None:
        body = self._entries.get(sha256)
        if body is not None:
            self._entries.move_to_end(sha256)
        return body

    @staticmethod
    def check(body: bytes, sha256: str, where: str) -> bytes:
        """`body` if it is `sha256` (hash it off the event loop: call it in an executor)."""
        if hashlib.sha256(body).hexdigest() != sha256:
            raise ContractError(f"{where} does not match the sha256 its manifest records")
        return body

    def put(self, sha256: str, body: bytes) -> None:
        if not self.fits(len(body)) or sha256 in self._entries:
            return
        self._entries[sha256] = body
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted)


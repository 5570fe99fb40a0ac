"""Where exports live: the Store interface and the on-disk default (listing, files, pins, eviction)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import logging
import math
import os
import secrets
import shutil
import stat
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncContextManager, AsyncIterator, BinaryIO, Callable, Iterable, Iterator, Mapping

from cachetools import LRUCache

from relay import resources
from relay.contract import MANIFEST, ContractError, DistTable, Export, read_export, read_header
from relay.locks import file_lock
from relay.resources import is_resource_error
from relay.storage.catalog import Catalog, Recorded, Unwritten
from relay.upkeep import Problems

logger = logging.getLogger("relay.store")

# Names the relay creates in the store root; like every dot-name, readers ignore them.
STAGING_PREFIX = ".relay-tmp-"
EVICTING_PREFIX = ".relay-evict-"
# A lock file per key pinned, shared by every process serving the store (there while pinned). Its
# name is older than the word "pin": relays of earlier versions on the same directory see it too.
PIN_PREFIX = ".relay-lease-"
# A lock file per commit being built, so that one process of all those serving the store builds it.
BUILD_LOCK_PREFIX = ".relay-build-"
# Staging left behind by a crashed relay is removed after this long.
STALE_STAGING_SECONDS = 24 * 3600
# Last use is written to the export directory's mtime at most this often, so a busy export costs no
# syscall per request but the time still survives a restart.
TOUCH_INTERVAL_SECONDS = 60.0
# Large files are sent in pieces of this size (where the store has no local file to send).
CHUNK_BYTES = 256 * 1024
# The disk store checks every export's manifest for a change in place once per this many scan
# intervals, a slice of the exports at each scan (docs/relay.md, "How soon the relay sees a change").
FULL_PASS_INTERVALS = 30
# A store root changed this recently is listed again at the next scan too: a second change within
# the file system's timestamp granularity can leave its mtime as it was.
SETTLE_SECONDS = 2.0
# A scan reads at most this many new manifests itself, besides branch tips (and manifests whose
# header cannot be read alone); the store's thread reads the others, newest first, and the listing
# shows them as they are read: a first start over thousands of exports without a catalog serves
# its branches' tips within a second (docs/relay.md, "The catalog").
FOREGROUND_PARSES = 16
# Meanwhile the exports it lists are recorded in the catalog at most this often (a crash loses only
# what a restart reads again).
RECORD_SECONDS = 5.0


@dataclass(frozen=True)
class StoredExport:
    """An export the store holds: the parsed manifest plus what the store knows about it."""

    export: Export
    size: int  # Export.size: its manifest and the files it lists (the contract's one meaning)


class Footprint:
    """The bytes a set of exports takes in a store, by the contract's one meaning (docs/design.md):
    every manifest, plus each file once however many exports list it (files are shared by content:
    hard links on disk, one object per sha256 in a bucket). Both stores' --max-size and the
    store-bytes metric count this; removing an export frees the files no other export lists."""

    def __init__(self, exports: Iterable[StoredExport]) -> None:
        self._listed: dict[str, int] = {}  # sha256 -> how many of the exports list it
        self.total = 0
        for stored in exports:
            self.total += stored.size
            for sha256, size in _listed_files(stored.export):
                if self._listed.get(sha256, 0):
                    self.total -= size  # counted once
                self._listed[sha256] = self._listed.get(sha256, 0) + 1

    def remove(self, stored: StoredExport) -> None:
        """Take one of the exports out: its manifest and the files only it listed are freed."""
        self.total -= stored.size
        for sha256, size in _listed_files(stored.export):
            self._listed[sha256] -= 1
            if self._listed[sha256]:
                self.total += size  # still listed by another export: not freed


def _listed_files(export: Export) -> set[tuple[str, int]]:
    """The (sha256, size) of each file an export lists."""
    files = {(d.sha256, d.size) for d in export.dists}
    files.update((d.metadata_sha256, d.metadata_size) for d in export.dists)
    return files


def to_evict(
    exports: Mapping[str, StoredExport],
    last_used: Mapping[str, float],
    policy: EvictionPolicy,
    now: float,
    keep: Callable[[str], bool],
) -> list[str]:
    """The exports a store should remove, least recently used first: unused for longer than the
    policy's age, then as many more as bring the Footprint under its size; never one `keep` says is
    in use. An export `last_used` has no time for counts as used `now`: nothing says it is old.
    The Footprint is counted only under a size cap (every file of every export: 0.9 s of a thread
    at 1,500 exports of 1,000 dists, each round)."""
    cap = policy.max_size_bytes
    footprint = None if cap is None else Footprint(exports.values())
    chosen: list[str] = []
    for key in sorted(exports, key=lambda k: last_used.get(k, now)):
        too_old = policy.max_age_seconds is not None and now - last_used.get(key, now) > policy.max_age_seconds
        too_big = footprint is not None and cap is not None and footprint.total > cap
        if (too_old or too_big) and not keep(key):
            chosen.append(key)
            if footprint is not None:
                footprint.remove(exports[key])
    return chosen


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
    # The local file the bytes come from, where the store has one: sent by the kernel (sendfile).
    file: BinaryIO | None = None


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

    @property
    def identity(self) -> str:
        """The same string for the same store on every start (its directory, its bucket and prefix):
        what a relay's default work directory is named after."""
        return self.description

    async def check(self) -> None:
        """Check once that the store works (credentials, bucket, conditional writes), then let go:
        raise StoreConfigError saying what to fix. Nothing runs in the background afterwards."""

    async def start(self) -> None:
        """Connect and check the store is usable; raise StoreConfigError saying what to fix."""

    async def close(self) -> None:
        """Release connections and stop background work."""

    async def refresh(self) -> None:
        """List the exports again now instead of at the next interval."""

    @property
    def reading(self) -> int:
        """Exports found but not listed yet because their manifests are still being read (a first
        start over a store without a catalog reads them in the background, tips first)."""
        return 0

    def unavailable(self) -> str | None:
        """Why the store cannot serve files now (None: it can), from what the store already knows:
        cheap enough for a load balancer's readiness probe every second."""
        return None

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
    def pin(self, key: str) -> contextlib.AbstractContextManager[None]:
        """While held, the export is not evicted (it is being served or built)."""

    @abstractmethod
    def build_claim(self, key: str) -> AsyncContextManager[StoredExport | None]:
        """Enter when this process may build `key`: one builder across processes and replicas.
        Entered with the export if it appeared meanwhile (pushed, or built by the claim's previous
        holder): then there is nothing to build."""

    @abstractmethod
    def staging_dir(self) -> Path:
        """A fresh local directory where a new export can be written before it is published."""

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh local directory for a new export, written there and then published; removed
        (with whatever is left in it) on the way out."""
        path = self.staging_dir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @abstractmethod
    async def publish(self, directory: Path) -> StoredExport:
        """Validate a complete local export directory and add it to the store so that it appears
        whole or not at all. The same export published twice is kept once."""

    async def publish_copy(self, directory: Path, export: Export) -> int:
        """Publish a copy of an export directory that stays where it is (`relay publish`), its
        manifest read and its files checked already; returns how many objects were written (0: the
        export was there already)."""
        if await self.find(export.key) is not None:
            return 0
        # A copy in the store's staging, published from there: the store never shows half an export.
        with self.staging() as staging:
            copy = staging / export.key
            await asyncio.get_running_loop().run_in_executor(None, shutil.copytree, directory, copy)
            await self.publish(copy)
        return len(export.filenames) + 1

    @abstractmethod
    async def evict(self, policy: EvictionPolicy, now: float | None = None) -> list[str]:
        """Remove exports unused for too long or beyond the size cap; return the evicted keys."""


def check_listed_files(directory: Path, export: Export, sizes: dict[int, int] | None = None) -> int:
    """Every file the manifest lists must be a regular file of the listed size in `directory`: catches
    half-copied exports. Returns their total size.

    One listing of the directory gives every name, type and inode; a size costs one `lstat` per
    distinct inode. `sizes` (inode -> size) is shared by the checks of one scan of a store: an
    unchanged wheel is one inode hard-linked into every export that lists it, so a start over 1,500
    exports of 1,000 dists reads the sizes of their ~5,000 distinct files, not of 3 million names.
    (Within a scan a file's size does not change: a file being copied in is an inode of its own.)
    """
    if sizes is None:
        sizes = {}
    try:
        with os.scandir(directory) as listing:
            entries = {e.name: e for e in listing}
    except OSError as e:
        if is_resource_error(e):
            raise  # out of file descriptors for a moment: not the export's fault (the scan keeps it)
        raise ContractError(f"{directory}: cannot be listed ({e.strerror})") from None
    total = 0
    for dist in export.dists:
        for filename, size in ((dist.filename, dist.size), (dist.metadata_filename, dist.metadata_size)):
            entry = entries.get(filename)
            if entry is None:
                raise ContractError(f"{directory / filename}: listed in the manifest but missing")
            if not entry.is_file(follow_symlinks=False):
                raise ContractError(f"{directory / filename}: not a regular file (symlinks are refused)")
            found = sizes.get(entry.inode())
            if found is None:
                try:
                    found = sizes[entry.inode()] = entry.stat(follow_symlinks=False).st_size
                except OSError:
                    raise ContractError(f"{directory / filename}: listed in the manifest but missing") from None
            if found != size:
                raise ContractError(f"{directory / filename}: {found} bytes, the manifest says {size}")
            total += size
    return total


def check_listed_names(directory: Path, export: Export) -> None:
    """Every file the manifest lists is in `directory` as a regular file (by the directory's listing,
    no stat per file: 40x cheaper than `check_listed_files`). For an export the catalog recorded
    complete: sizes and bytes are checked when a file is served."""
    with os.scandir(directory) as entries:
        regular = {e.name for e in entries if e.is_file(follow_symlinks=False)}
    for dist in export.dists:
        for filename in (dist.filename, dist.metadata_filename):
            if filename not in regular:
                raise ContractError(f"{directory / filename}: listed in the manifest but missing (or not a regular file)")


class DiskStore(Store):
    """A directory whose children are export directories, exactly as the goal writes them."""

    def __init__(
        self,
        root: Path,
        scan_interval: float = 1.0,
        background_parse_bytes: int | None = None,
        catalog: bool = True,
    ) -> None:
        """`background_parse_bytes`: manifests larger than this are parsed on a thread of the store's
        own (the listing shows them once parsed); None parses every manifest in the caller.
        `catalog`: keep parsed manifests in the store's catalog file (relay/storage/catalog.py), so
        a restart reads that instead of every manifest; False reads and checks every export."""
        self.root = root.resolve()
        self.scan_interval = scan_interval
        self.background_parse_bytes = background_parse_bytes or 0
        self._background = (
            None if background_parse_bytes is None
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-store-parse")
        )
        # name -> (manifest stamp, the parse's outcome, or its future while it runs in the background).
        self._parsed: dict[str, tuple[tuple[int, ...], Export | ContractError | Future[Export]]] = {}
        self._lock = threading.RLock()
        self._exports: dict[str, StoredExport] = {}
        # key -> stamp of the directory and its manifest: a changed or replaced export is read again.
        self._stamps: dict[str, tuple[int, ...]] = {}
        # Problems by entry ("" for the root), each logged once: a corrupt export once, not per scan.
        self._reported = Problems(logger)
        self._generation = 0
        self._scanned_at = float("-inf")
        # The root's entries (but dot-names) as last listed, and the root's stamp then (None: list
        # it again at the next scan).
        self._entries: dict[str, os.DirEntry[str]] = {}
        self._root_stamp: tuple[int, ...] | None = None
        # Entries that are no valid export (yet): looked at on every scan.
        self._invalid: set[str] = set()
        # The full pass: the names it goes through and where it is; entries the next scan checks
        # whatever the pass (an export from the catalog whose files turned out missing).
        self._rotation: list[str] = []
        self._cursor = 0
        self._sliced_at = float("-inf")
        self._recheck: set[str] = set()
        self._last_used: dict[str, float] = {}
        self._touched_at: dict[str, float] = {}
        self._pins: dict[str, int] = {}
        self._pin_files: dict[str, int | None] = {}
        # (key, filename) -> the file's stamp when its sha256 was last found right; the least recently
        # checked forgotten first (a forgotten file is hashed once more when next served).
        self._digests_checked: LRUCache[tuple[str, str], tuple[int, ...]] = LRUCache(maxsize=4096)
        self._digests_lock = threading.Lock()  # files are checked on the executor's threads
        # Dists shared by content across exports: memory follows distinct dists, not exports x dists.
        self._table = DistTable()
        self._catalog = Catalog(self.root) if catalog else None
        # What the catalog recorded, read by the first scan (then dropped: the exports hold it).
        self._recorded: dict[str, Recorded] | None = None if catalog else {}
        # Exports parsed from their manifests and not yet in the catalog; keys the catalog has.
        self._unwritten = Unwritten()
        # Reads queued on the store's thread (or made by a request instead) and not done, and the
        # files' sizes by inode for their checks, while the queue lasts.
        self._queued = 0
        self._background_sizes: dict[int, int] = {}
        self._recorded_at = float("-inf")
        # What this scan parses in its caller (None: every manifest up to background_parse_bytes),
        # see `_fill_order`: the manifests it must read whatever their size, and the others it may.
        self._foreground: tuple[set[str], set[str]] | None = None

    # Listing.

    @property
    def generation(self) -> int:
        self._refresh()
        return self._generation

    def exports(self) -> Mapping[str, StoredExport]:
        self._refresh()
        return self._exports

    def rescan(self) -> None:
        """Scan now, every export (after a publish or an eviction), instead of at the next interval."""
        with self._lock:
            self._scanned_at = time.monotonic()
            self._scan(full=True, elapsed=0.0)

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._scanned_at < self.scan_interval:
            return
        with self._lock:
            if now - self._scanned_at < self.scan_interval:
                return
            self._scanned_at = now
            self._scan(full=self.scan_interval <= 0, elapsed=now - self._sliced_at)
            self._sliced_at = now

    def _scan(self, full: bool, elapsed: float) -> None:
        """Bring the listing in line with the store root. A scan costs what changed, not one `stat`
        per export: the root is listed again only when its stamp changed (an export published,
        removed or replaced is a rename in the root), and only new or replaced directories are read;
        a manifest changed in place is found by the full pass, a slice of the exports per scan over
        FULL_PASS_INTERVALS; entries that are no valid export yet are looked at on every scan.
        `full`: check every export's manifest now."""
        if self._recorded is None and self._catalog is not None:
            self._recorded = self._catalog.load(self._table)
            self._unwritten.loaded(self._recorded)
        listed = self._list_root(force=full)
        if listed is None:
            return  # the last listing stands
        entries = self._entries
        if full:
            due: Iterable[str] = list(entries)
        else:
            changed_dirs = (
                [n for n, e in entries.items() if self._stamps.get(n, ())[:1] != (e.inode(),)]
                if listed else []
            )
            due = dict.fromkeys([*changed_dirs, *self._invalid, *self._recheck, *self._next_slice(elapsed)])
        due = self._fill_order(due, entries)
        self._recheck = set()
        updates: dict[str, tuple[StoredExport, tuple[int, ...]] | None] = {}
        sizes: dict[int, int] = {}  # the files' sizes by inode, for this scan (see check_listed_files)
        for name in due:
            entry = entries.get(name)
            if entry is None:
                continue
            remembered = self._parsed.get(name)
            if remembered is not None and isinstance(remembered[1], Future) and not remembered[1].done():
                # Being read on the store's thread, which lists it: no system call here meanwhile
                # (each one would wait for that thread to let go of the GIL, milliseconds apiece).
                continue
            previous = self._exports.get(name)
            stamps: dict[str, tuple[int, ...]] = {}
            try:
                stored = self._load(entry, stamps, sizes)
            except OSError as e:
                if is_resource_error(e) and previous is not None:
                    resources.report(f"scanning the store {self.root}", e)
                    continue  # kept as it was
                # Replaced or removed while it was being read, or a file system error: this entry
                # is skipped, the others are still listed.
                self._report(name, f"skipping {entry.path}: {e.strerror} ({e.filename})")
                stored = None
            if stored is None:
                self._invalid.add(name)
                if previous is not None:
                    updates[name] = None
            else:
                self._invalid.discard(name)
                if stored is not previous or self._stamps.get(name) != stamps[name]:
                    updates[name] = (stored, stamps[name])
        gone = self._exports.keys() - entries.keys() if listed else set()
        if listed:
            self._invalid &= entries.keys()
            self._reported.keep_only(entries.keys() | {""})
            for name in set(self._parsed) - entries.keys():
                del self._parsed[name]
        self._recorded = {}
        if updates or gone:
            exports = dict(self._exports)
            stamps = dict(self._stamps)
            for name in gone:
                exports.pop(name, None)
                stamps.pop(name, None)
            for name, update in updates.items():
                if update is None:
                    exports.pop(name, None)
                    stamps.pop(name, None)
                else:
                    exports[name], stamps[name] = update
            self._exports = exports
            self._stamps = stamps
            self._generation += 1
        if updates or gone or self._unwritten.rows:
            # While the store's thread reads a queue (a first start), its exports are recorded
            # every few seconds, not at every request's scan (a write each).
            if updates or gone or not self._queued or time.monotonic() - self._recorded_at > RECORD_SECONDS:
                self._record(self._exports)
        self._foreground = None
        if updates and not self._queued:
            self._table.forget_recent()

    def _fill_order(self, due: Iterable[str], entries: Mapping[str, os.DirEntry[str]]) -> list[str]:
        """The names to scan, in the order to read them, and which of them this scan reads itself
        (`_foreground`). When more than FOREGROUND_PARSES are new (never read, no catalog row: a
        first start, or a store filled while no relay ran), their headers are read first (a few KB
        each, `read_header`): this scan reads the tip of every branch they name, the manifests
        whose header could not be read so (no order can be told for them) and the newest
        FOREGROUND_PARSES others; the store's thread reads the rest, tagged exports first, then
        newest first. So a branch is served at its tip from the first page on, and its older
        versions join its pages as they are read."""
        names = list(due)
        self._foreground = None
        if self._background is None:
            return names
        recorded = self._recorded or {}
        new = [n for n in names if n in entries and n not in self._exports and n not in recorded
               and n not in self._parsed]
        if len(new) <= FOREGROUND_PARSES:
            return names
        # Tips and manifests of unknown order are read here even when large (on the store's thread
        # a branch's page would have no export for as long); the newest others only when small.
        must, may, rest = read_order({n: read_header(Path(entries[n].path)) for n in new}, FOREGROUND_PARSES)
        self._foreground = (must, may)
        known = set(new)
        return [*(n for n in new if n in must or n in may), *(n for n in names if n not in known), *rest]

    def _list_root(self, force: bool) -> bool | None:
        """List the store root if it changed since the last listing (or `force`): True if listed,
        False if the last listing still stands, None if the root cannot be listed for a moment."""
        try:
            st = os.stat(self.root)
            stamp: tuple[int, ...] | None = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            st, stamp = None, None
        if not force and stamp is not None and stamp == self._root_stamp:
            return False
        try:
            with os.scandir(self.root) as found:
                entries = [e for e in found if not e.name.startswith(".")]
        except OSError as e:
            if is_resource_error(e):
                # Out of file descriptors for a moment: the last listing stands.
                resources.report(f"scanning the store {self.root}", e)
                return None
            self._report("", f"store {self.root} cannot be read: {e.strerror}")
            entries, stamp = [], None
        self._entries = {e.name: e for e in entries}
        self._rotation = list(self._entries)
        settled = st is not None and time.time() - st.st_mtime > SETTLE_SECONDS
        self._root_stamp = stamp if settled else None
        return True

    def _next_slice(self, elapsed: float) -> list[str]:
        """The names the full pass checks at this scan: its share of FULL_PASS_INTERVALS scan
        intervals for the time since the last scan (all of them after a long quiet)."""
        names = self._rotation
        if not names:
            return []
        share = elapsed / (FULL_PASS_INTERVALS * max(self.scan_interval, 1e-9))
        count = len(names) if share >= 1 else max(1, math.ceil(len(names) * share))
        start = self._cursor % len(names)
        self._cursor = start + count
        return names[start:start + count] + names[: max(0, start + count - len(names))]

    def _record(self, found: Mapping[str, StoredExport]) -> None:
        """Bring the catalog in line with this scan: the exports parsed from their manifests in,
        the ones gone out. One transaction; another process writing it means next time."""
        if self._catalog is None:
            return
        self._recorded_at = time.monotonic()
        due = self._unwritten.due(found)
        if due is not None and self._catalog.write(*due):
            self._unwritten.written(*due)

    def _load(
        self, entry: os.DirEntry[str], stamps: dict[str, tuple[int, ...]], sizes: dict[int, int] | None = None
    ) -> StoredExport | None:
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
        # Inodes and ctime too: an export replaced by a copy that kept the manifest's mtime and size
        # (cp -p, rsync -a) is still another export.
        stamp = (entry.inode(), *_stat_stamp(st))
        previous = self._exports.get(name)
        if previous is not None and self._stamps.get(name) == stamp:
            stamps[name] = stamp
            return previous
        recorded = (self._recorded or {}).get(name)
        if recorded is not None and recorded.stamp == stamp:
            # The catalog's row for this very manifest: it was complete and valid when recorded.
            # Its files are checked to be there (one could have been removed since) by one listing
            # of the directory, on the store's own thread when it has one: a start lists every
            # export at once. Sizes and bytes are checked when a file is served.
            stored = StoredExport(export=recorded.export, size=recorded.size)
            if self._background is None:
                try:
                    check_listed_names(Path(entry.path), recorded.export)
                except OSError as e:
                    self._report(name, f"skipping {entry.path}: {e.strerror}")
                    return None
                except ContractError as e:
                    self._report(name, f"skipping export: {e}")
                    return None
            else:
                self._background.submit(self._check_recorded, name, Path(entry.path), stamp, recorded.export)
            stamps[name] = stamp
            return stored
        export = self._parse(name, Path(entry.path), stamp, st.st_size)
        if export is None:
            return None
        try:
            size = self._check_files(Path(entry.path), export, sizes)
        except ContractError as e:
            # Not remembered: the files of a half-copied export may still arrive.
            self._report(name, f"skipping export: {e}")
            return None
        self._reported.resolve(name)
        stamps[name] = stamp
        if self._catalog is not None:
            self._unwritten.note(name, Recorded(stamp=stamp, export=export, size=size))
        return StoredExport(export=export, size=size)

    def _parse(self, name: str, directory: Path, stamp: tuple[int, ...], size: int) -> Export | None:
        """The manifest's Export, or None (skipped, or still being parsed in the background).

        The outcome is remembered by the manifest's stamp, a failure too: a bad manifest costs one
        parse per change, not one per scan. A large one is parsed on the store's own thread, so a
        scan run by a request never waits for it.
        """
        remembered = self._parsed.get(name)
        if remembered is None or remembered[0] != stamp:
            if self._foreground is None:
                in_background = size > self.background_parse_bytes
            else:
                must, may = self._foreground
                in_background = name not in must and (name not in may or size > self.background_parse_bytes)
            if self._background is not None and in_background:
                future = self._background.submit(self._read_in_background, name, directory, stamp)
                self._queue(future)
                remembered = (stamp, future)
            else:
                remembered = (stamp, _outcome(read_export, directory, self._table))
            self._parsed[name] = remembered
        outcome = remembered[1]
        if isinstance(outcome, Future):
            if not outcome.done() or outcome.cancelled():  # cancelled: the store is being closed
                return None
            outcome = _outcome(outcome.result)
            self._parsed[name] = (stamp, outcome)
        if isinstance(outcome, ContractError):
            self._report(name, f"skipping export: {outcome}")
            return None
        return outcome

    def _read_in_background(self, name: str, directory: Path, stamp: tuple[int, ...]) -> Export:
        """`read_export` on the store's thread, then the export's files checked and the export
        listed from here: a scan on another thread picks up only what failed (and reports it), so
        the scans a first start's requests make meanwhile cost no system call per export read."""
        try:
            export = read_export(directory, self._table)
        except ContractError:
            self._rescan_soon()  # the scan reports it
            raise
        try:
            size = self._check_files(directory, export, self._background_sizes)
        except (ContractError, OSError):
            self._rescan_soon()  # the scan checks again, and reports it or keeps its last listing
            return export
        with self._lock:
            entry = self._entries.get(name)
            remembered = self._parsed.get(name)
            if entry is None or entry.inode() != stamp[0] or remembered is None or remembered[0] != stamp:
                self._rescan_soon()  # removed or replaced meanwhile: the scan decides
                return export
            if self._stamps.get(name) != stamp:
                self._exports = {**self._exports, name: StoredExport(export=export, size=size)}
                self._stamps = {**self._stamps, name: stamp}
                self._generation += 1
                if self._catalog is not None:
                    self._unwritten.note(name, Recorded(stamp=stamp, export=export, size=size))
            self._invalid.discard(name)
            self._reported.resolve(name)
        return export

    def _queue(self, future: Future[Export]) -> None:
        """Count a read on the store's thread (or one a request made instead, `_listed`) until done."""
        with self._lock:
            self._queued += 1
        future.add_done_callback(self._dequeue)

    def _dequeue(self, _: Future[Export]) -> None:
        with self._lock:
            self._queued -= 1
            if not self._queued:
                # The queue is done: no size nor parsed entry is kept for the next one, and what it
                # listed goes into the catalog at the next scan.
                self._background_sizes = {}
                self._table.forget_recent()
                self._rescan_soon()

    def _check_recorded(self, name: str, directory: Path, stamp: tuple[int, ...], export: Export) -> None:
        """A listed export from the catalog whose files turn out incomplete is read again from its
        manifest at the next scan, which reports it and leaves it out."""
        try:
            check_listed_names(directory, export)
        except (ContractError, OSError):
            with self._lock:
                if self._stamps.get(name) == stamp:
                    self._stamps[name] = ()
                    self._recheck.add(name)
            self._rescan_soon()

    def _rescan_soon(self) -> None:
        self._scanned_at = float("-inf")

    def close_parser(self) -> None:
        """Stop the background parser (if any)."""
        if self._background is not None:
            self._background.shutdown(wait=True, cancel_futures=True)
        if self._catalog is not None:
            with self._lock:
                if self._unwritten.rows:
                    self._record(self._exports)  # what the store's thread listed since the last write
            self._catalog.close()

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close_parser)

    @property
    def description(self) -> str:
        return str(self.root)

    async def refresh(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.rescan)

    def unavailable(self) -> str | None:
        # Two system calls: the directory is there and this process may list and read it.
        if not self.root.is_dir():
            return f"the store directory {self.root} is missing"
        if not os.access(self.root, os.R_OK | os.X_OK):
            return f"the store directory {self.root} cannot be read"
        return None

    def _check_files(self, directory: Path, export: Export, sizes: dict[int, int] | None = None) -> int:
        """Every listed file must be a regular file of the listed size (catches half-copied exports);
        returns the export's size as the contract counts it (manifest and listed files)."""
        check_listed_files(directory, export, sizes)
        try:
            manifest_bytes = (directory / MANIFEST).lstat().st_size
        except OSError as e:
            raise ContractError(f"{directory / MANIFEST}: cannot be read ({e.strerror})") from None
        return export.size(manifest_bytes)

    @property
    def reading(self) -> int:
        return self._queued

    @property
    def problems(self) -> Mapping[str, str]:
        """Entries of the store root that are skipped, with the reason (logged once each)."""
        self._refresh()
        return dict(self._reported)

    def _report(self, name: str, message: str) -> None:
        self._reported.report(message, name)

    # Files.

    def open_file(self, key: str, filename: str) -> BinaryIO | None:
        """A file the export's manifest lists, opened for reading, or None (never any other file).

        Raises ContractError if what is there now is not what the manifest lists (a symlink, not a
        regular file, another size), OSError if the relay is out of file descriptors or memory.
        Blocking: call it off the event loop.
        """
        stored = self._exports.get(key)
        digest = None if stored is None else stored.export.digest(filename)
        if digest is None:
            return None
        where = f"{key}/{filename}"
        # Neither the export directory nor the file is followed if it became a symlink since the
        # scan, and a FIFO put there cannot block the open.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            directory = os.open(self.root / key, flags | os.O_DIRECTORY)
        except FileNotFoundError:
            return None  # evicted or removed since the scan
        except OSError as e:
            if is_resource_error(e):
                raise  # not the export's fault
            raise ContractError(f"{where}: the export directory cannot be opened ({e.strerror})") from None
        try:
            fd = os.open(filename, flags | os.O_NONBLOCK, dir_fd=directory)
        except OSError as e:
            if is_resource_error(e):
                raise
            raise ContractError(f"{where}: cannot be opened ({e.strerror})") from None
        finally:
            os.close(directory)
        file = os.fdopen(fd, "rb")
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ContractError(f"{where}: not a regular file")
            if st.st_size != digest[1]:
                raise ContractError(f"{where}: {st.st_size} bytes, the manifest says {digest[1]}")
        except BaseException:
            file.close()
            raise
        return file

    def _read(self, key: str, filename: str) -> bytes:
        file = self.open_file(key, filename)
        if file is None:
            raise NotListed(f"{key}/{filename}")
        with file:
            return file.read()

    async def read(self, key: str, filename: str) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(None, self._read, key, filename)

    @contextlib.asynccontextmanager
    async def open(self, key: str, filename: str) -> AsyncIterator[Blob]:
        loop = asyncio.get_running_loop()
        file = await loop.run_in_executor(None, self.open_file, key, filename)
        if file is None:
            raise NotListed(f"{key}/{filename}")
        with file:
            # Checked once per change of the file before any byte goes out.
            await loop.run_in_executor(None, self.check_digest, key, filename, file)

            async def chunks() -> AsyncIterator[bytes]:
                while True:
                    chunk = await loop.run_in_executor(None, file.read, CHUNK_BYTES)
                    if not chunk:
                        return
                    yield chunk

            yield Blob(size=os.fstat(file.fileno()).st_size, chunks=chunks(), file=file)

    def check_digest(self, key: str, filename: str, file: BinaryIO) -> None:
        """Raise ContractError unless the opened file's bytes have the manifest's sha256; a file is
        hashed again only when it changed on disk. Blocking: call it off the event loop."""
        stored = self._exports.get(key)
        digest = None if stored is None else stored.export.digest(filename)
        if digest is None:
            raise ContractError(f"{key}/{filename}: no longer listed")
        st = os.fstat(file.fileno())
        stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        memo = (key, filename)
        with self._digests_lock:
            if self._digests_checked.get(memo) == stamp:
                return
        h = hashlib.sha256()
        file.seek(0)
        for chunk in iter(lambda: file.read(1024 * 1024), b""):
            h.update(chunk)
        file.seek(0)
        if h.hexdigest() != digest[0]:
            raise ContractError(f"{key}/{filename} does not match the sha256 its manifest records")
        with self._digests_lock:
            self._digests_checked[memo] = stamp

    # Use, pins and eviction.

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
    def pin(self, key: str) -> Iterator[None]:
        with self._lock:
            count = self._pins.get(key, 0)
            if not count:
                # Other processes serving this store (`--workers N`) see the pin too: a shared
                # lock on a file of the key, held while this process has any pin on it.
                self._pin_files[key] = self._lock_pin_file(key, fcntl.LOCK_SH)
            self._pins[key] = count + 1
        try:
            yield
        finally:
            with self._lock:
                self._pins[key] -= 1
                if not self._pins[key]:
                    del self._pins[key]
                    fd = self._pin_files.pop(key, None)
                    if fd is not None:
                        self._unlock_pin_file(key, fd)

    def pinned(self, key: str) -> bool:
        return key in self._pins

    def _lock_pin_file(self, key: str, operation: int) -> int | None:
        """A lock on `.relay-lease-<key>` (taken without waiting), or None if another holds it."""
        path = self.root / (PIN_PREFIX + key)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except OSError as e:
                if is_resource_error(e):
                    resources.report("locking pin files", e)
                else:
                    logger.warning("cannot lock the pin file of %s: %s", key, e.strerror)
                return None
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
                # The last holder removes the file when it lets go: a lock on a file already
                # removed would protect nothing, so take the one now at the path.
                if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    return fd
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.EWOULDBLOCK):
                    logger.warning("cannot lock the pin file of %s: %s", key, e.strerror)
                os.close(fd)
                if e.errno != errno.ENOENT:
                    return None
                continue
            os.close(fd)
        return None

    def _unlock_pin_file(self, key: str, fd: int, remove: bool = False) -> None:
        """Let go of a pin file; the last holder (or the evictor) removes it."""
        try:
            if not remove:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(self.root / (PIN_PREFIX + key))
        except OSError:
            pass  # another process still holds it
        finally:
            os.close(fd)

    @contextlib.asynccontextmanager
    async def build_claim(self, key: str) -> AsyncIterator[StoredExport | None]:
        # A file lock beside the exports: every worker process of every relay on this directory
        # agrees. Taken off the event loop; the kernel drops it when a process dies.
        self.root.mkdir(parents=True, exist_ok=True)  # as staging_dir: a store not created yet is created
        # Removed when let go: a process already waiting on it re-checks the store once it gets it,
        # and later requests find the export there first.
        async with file_lock(self.root / f"{BUILD_LOCK_PREFIX}{key}.lock", remove=True):
            self.rescan()
            yield await self._listed(key)

    async def find(self, key: str) -> StoredExport | None:
        return await self._listed(key)

    async def _listed(self, key: str) -> StoredExport | None:
        """The export if listed, waiting for its manifest's parse when the store's thread has it (a
        large manifest another worker process published): a commit in the store is never built again
        for want of a parse."""
        found = self.exports().get(key)
        if found is not None:
            return found
        with self._lock:
            remembered = self._parsed.get(key)
            if remembered is None or not isinstance(remembered[1], Future):
                return None
            future = remembered[1]
            # Still queued behind others (a first start reading the store): read it now instead,
            # into a future of its own that the scans wait for as they would for the queued one.
            now = future.cancel()
            if now:
                future = Future()
                self._queue(future)
                self._parsed[key] = (remembered[0], future)
        if now:
            try:
                future.set_result(await asyncio.get_running_loop().run_in_executor(
                    None, self._read_in_background, key, self.root / key, remembered[0]
                ))
            except Exception as e:  # the scan reports it, as it does a queued parse's
                future.set_exception(e)
        else:
            with contextlib.suppress(Exception):  # the scan reports a bad manifest
                await asyncio.wrap_future(future)
        self._rescan_soon()
        return self.exports().get(key)

    def staging_dir(self) -> Path:
        path = self.root / (STAGING_PREFIX + secrets.token_hex(8))
        path.mkdir(parents=True)
        return path

    async def publish(self, directory: Path) -> StoredExport:
        return await asyncio.get_running_loop().run_in_executor(None, self.publish_now, directory)

    def publish_now(self, directory: Path) -> StoredExport:
        """`publish` for callers without an event loop (the directory is renamed into the root)."""
        export = read_export(directory, self._table)
        self._share_unchanged(directory, export)
        size = self._check_files(directory, export)
        target = self.root / export.key
        try:
            os.rename(directory, target)
            self._parsed_already(target, export)
        except OSError:
            self.rescan()
            if export.key not in self._exports:
                # A leftover that is no valid export (half copied, damaged) would refuse every new
                # build of this commit: move it aside (removed like an evicted export) and publish.
                aside = self.root / (EVICTING_PREFIX + export.key + "-" + secrets.token_hex(4))
                os.rename(target, aside)
                logger.warning("moved the invalid %s aside to publish a new build of it", export.key)
                os.rename(directory, target)
                shutil.rmtree(aside, ignore_errors=True)
            else:
                # Someone (a push, another relay) published the same commit first: the contract says
                # the bytes are identical, so theirs stands.
                logger.info("export %s was already in the store; keeping the existing one", export.key)
        self.touch(export.key)
        self.rescan()
        return self._exports.get(export.key) or StoredExport(export=export, size=size)

    def _parsed_already(self, directory: Path, export: Export) -> None:
        """Remember the manifest just parsed by its stamp, so the rescan after a publish lists the
        export at once: a large manifest would otherwise be parsed again on the store's thread, and
        a branch page asked right after its tip's build would not find the tip yet."""
        try:
            stamp = (os.lstat(directory).st_ino, *_manifest_stamp(directory / MANIFEST))
        except OSError:
            return
        with self._lock:
            self._parsed[export.key] = (stamp, export)

    def _share_unchanged(self, directory: Path, export: Export) -> None:
        """Replace each file an export already in the store holds (same name and sha256) by a hard
        link to it: a pull build of the next commit stores only the wheels that changed."""
        held: dict[str, tuple[str, str]] = {}
        for key, stored in self.exports().items():
            for dist in stored.export.dists:
                held.setdefault(dist.filename, (key, dist.sha256))
        for dist in export.dists:
            found = held.get(dist.filename)
            if found is None or found[1] != dist.sha256:
                continue
            for filename in (dist.filename, dist.metadata_filename):
                staged = directory / (filename + ".link")
                try:
                    os.link(self.root / found[0] / filename, staged, follow_symlinks=False)
                    if staged.lstat().st_size != (directory / filename).lstat().st_size:
                        staged.unlink()
                        continue
                    os.replace(staged, directory / filename)
                except OSError:
                    with contextlib.suppress(OSError):
                        staged.unlink()

    async def evict(self, policy: EvictionPolicy, now: float | None = None) -> list[str]:
        return await asyncio.get_running_loop().run_in_executor(None, self.evict_now, policy, now)

    def evict_now(self, policy: EvictionPolicy, now: float | None = None) -> list[str]:
        """`evict` for callers without an event loop."""
        now = time.time() if now is None else now
        self._remove_stale_staging(now)
        exports = self.exports()
        used = {key: self.last_used(key) for key in exports}
        # Another process's pin on an export shows when its removal is tried (_remove refuses).
        evicted = [key for key in to_evict(exports, used, policy, now, self.pinned) if self._remove(key)]
        if evicted:
            self.rescan()
            if self._catalog is not None:
                with self._lock:
                    self._catalog.forget_unlisted_dists()
        return evicted

    def _remove(self, key: str) -> bool:
        with self._lock:
            if self.pinned(key):
                return False
            # An exclusive lock fails while another process holds a pin on the key.
            fd = self._lock_pin_file(key, fcntl.LOCK_EX)
            if fd is None:
                return False
            try:
                # Rename first: readers stop seeing the export in one step, then the files go.
                doomed = self.root / (EVICTING_PREFIX + key + "-" + secrets.token_hex(4))
                try:
                    os.rename(self.root / key, doomed)
                except OSError as e:
                    logger.warning("cannot evict export %s: %s", key, e.strerror)
                    return False
            finally:
                self._unlock_pin_file(key, fd, remove=True)
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


def read_order(
    headers: Mapping[str, Mapping[str, Any] | None], newest: int
) -> tuple[set[str], set[str], list[str]]:
    """Which of many exports never read to read before serving, from their manifests' headers
    (`contract.read_header`): the tip of every branch they name and those whose header could not be
    read (no order can be told for them: they may be tips), then the `newest` others; and
    the rest in the order to read them while serving, tagged exports first, then newest first."""
    order = sorted(headers, key=lambda n: _header_recency(headers[n]), reverse=True)
    tips: dict[str, str] = {}
    for name in order:  # newest first: the first export naming a branch is its tip
        header = headers[name]
        if header is not None and header.get("dirty") is False:
            for branch in _header_names(header, "branches"):
                tips.setdefault(branch, name)
    must = {*tips.values(), *(n for n in order if headers[n] is None)}
    may = set([n for n in order if n not in must][:newest])
    rest = [n for n in order if n not in must and n not in may]
    tagged = [n for n in rest if _header_names(headers[n], "tags")]
    return must, may, [*tagged, *(n for n in rest if not _header_names(headers[n], "tags"))]


def _header_recency(header: Mapping[str, Any] | None) -> tuple[int, str]:
    """`relay.contract.recency` from a manifest's header, as far as it can be told (unread last)."""
    if header is None:
        return (-1, "")
    count, time_ = header.get("count"), header.get("commit_time")
    return (
        count if isinstance(count, int) and not isinstance(count, bool) else -1,
        time_ if isinstance(time_, str) else "",
    )


def _header_names(header: Mapping[str, Any] | None, key: str) -> list[str]:
    """The branches or tags a manifest's header names (none if it names them wrongly)."""
    names = None if header is None else header.get(key)
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _outcome(parse: Callable[..., Export], *args: object) -> Export | ContractError:
    try:
        return parse(*args)
    except ContractError as e:
        return e


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


def _stat_stamp(st: os.stat_result) -> tuple[int, ...]:
    """What identifies one version of a manifest file (with its directory's inode, one export)."""
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def _manifest_stamp(manifest: Path) -> tuple[int, ...]:
    return _stat_stamp(manifest.lstat())

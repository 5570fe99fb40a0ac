"""The disk store's catalog: every valid export's parsed manifest in one SQLite file in the store.

A restart reads this one file instead of parsing every manifest and checking every listed file
(1,500 exports of 1,000 dists are about a gigabyte of manifests). It is never the source of truth:
a row is used only while its export's directory and manifest have the stamp the row records (the
manifest is written last and files are never modified in place, so the export the row describes is
still the one on disk); anything else is parsed from the manifest again. A missing, damaged or
older-schema file is rebuilt from the manifests; a crash while writing leaves the last committed
rows (SQLite's transactions), each of which describes one complete export.

Dists are stored once by content (their manifest entry's canonical text), and each export as a
list of their ids, so the file, like the store's memory, grows with distinct dists.
"""

from __future__ import annotations

import array
import json
import logging
import os
import secrets
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Mapping, Sequence

from relay.contract import (
    ContractError, Dist, DistTable, Export, dist_entry, entry_text, export_from_parts, manifest_header,
)

logger = logging.getLogger("relay.store")

CATALOG = ".relay-catalog.sqlite3"
# Bumped when the tables change: a file of another schema is rebuilt.
SCHEMA = 1
# What an object store's replicas share in the bucket (under catalog/): one schema and byte order
# (an export's dist ids are machine-order integers) per name, so a replica reads only a file it can use.
SHARED_NAME = f"relay-catalog-v{SCHEMA}-{sys.byteorder}.sqlite3"
# Another process of this store (`--workers N`) writing: wait this long, else write next time.
BUSY_SECONDS = 0.5

_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dists (id INTEGER PRIMARY KEY, entry TEXT NOT NULL UNIQUE)",
    # stamp: JSON list of the directory's and manifest's stamp; header: the manifest but `dists`;
    # dists: their ids, an array of 32-bit unsigned integers (machine byte order).
    "CREATE TABLE IF NOT EXISTS exports (key TEXT PRIMARY KEY, stamp TEXT NOT NULL, size INTEGER NOT NULL,"
    " header TEXT NOT NULL, dists BLOB NOT NULL)",
)


@dataclass(frozen=True)
class Recorded:
    """An export as the catalog recorded it, for the stamp it had then."""

    # The disk store's: integers (directory and manifest); the S3 store's: the listed ETag, size
    # and write time of the manifest.
    stamp: tuple[int | str, ...]
    export: Export
    size: int


class Unwritten:
    """A store's bookkeeping beside its catalog: the rows parsed from manifests and not written
    yet, and the keys the catalog holds. `due` says what a write should do to match a listing,
    `written` takes in a write that succeeded (rows noted again meanwhile stay due)."""

    def __init__(self) -> None:
        self.rows: dict[str, Recorded] = {}
        self.keys: set[str] = set()

    def loaded(self, recorded: Mapping[str, Recorded]) -> None:
        self.keys = set(recorded)

    def note(self, key: str, row: Recorded) -> None:
        self.rows[key] = row

    def due(self, listed: Iterable[str]) -> tuple[dict[str, Recorded], set[str]] | None:
        """The rows to write and the keys to remove so the catalog matches `listed`; None: it does."""
        listed = set(listed)
        for key in set(self.rows) - listed:
            del self.rows[key]
        removed = self.keys - listed
        if not self.rows and not removed:
            return None
        return dict(self.rows), removed

    def written(self, rows: Mapping[str, Recorded], removed: Iterable[str]) -> None:
        self.keys = (self.keys - set(removed)) | set(rows)
        for key, row in rows.items():
            if self.rows.get(key) is row:
                del self.rows[key]


class _Parsed(Dict[int, Dist]):
    """Dist ids -> Dists of one (format, version) group of a catalog being loaded: a dist is parsed
    the first time an export lists it."""

    def __init__(self, entries: Mapping[int, str], table: DistTable, fmt: int, version: str) -> None:
        super().__init__()
        self.entries = entries
        self.table = table
        self.fmt = fmt
        self.version = version
        self.where = ""  # the row being read, for messages

    def __missing__(self, id_: int) -> Dist:
        text = self.entries.get(id_)
        if text is None:
            raise ContractError(f"{self.where}: dist {id_} is not recorded")
        dist = self[id_] = self.table.dist(text, None, self.version, self.fmt, self.where)
        return dist


class Catalog:
    """The catalog file of one store directory (opened on first use)."""

    def __init__(self, root: Path) -> None:
        self.path = root / CATALOG
        self._db: sqlite3.Connection | None = None
        self._broken = False  # cannot be created or written here (read-only store): run without it
        self._ids: dict[str, int] = {}  # entry text -> id, for the rows this process read or wrote

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is not None or self._broken:
            return self._db
        for attempt in range(2):
            try:
                db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
                try:
                    with db:
                        for statement in _TABLES:
                            db.execute(statement)
                    row = db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
                    if row is None:
                        with db:
                            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
                    elif row[0] != str(SCHEMA):
                        raise sqlite3.DatabaseError(f"schema {row[0]}, this relay writes {SCHEMA}")
                    db.execute("PRAGMA quick_check").fetchone()
                except BaseException:
                    db.close()
                    raise
                self._db = db
                return db
            except sqlite3.OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    return None  # another process is creating it: next time
                self._give_up(e)
                return None
            except sqlite3.DatabaseError as e:
                if attempt:
                    self._give_up(e)
                    return None
                # Damaged or of another schema: it is only a cache of the manifests.
                logger.warning("rebuilding the store's catalog %s from the manifests: %s", self.path, e)
                self._remove()
        return None

    def _give_up(self, e: Exception) -> None:
        logger.warning("running without the store's catalog %s: %s (every start parses every manifest)", self.path, e)
        self._broken = True

    def _remove(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                os.unlink(f"{self.path}{suffix}")
            except FileNotFoundError:
                pass
            except OSError as e:
                logger.warning("cannot remove %s%s: %s", self.path, suffix, e.strerror)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def snapshot(self) -> bytes | None:
        """The catalog as one self-contained SQLite file (SQLite's online backup: consistent while
        other processes write it), or None without a usable catalog."""
        db = self._connect()
        if db is None:
            return None
        try:
            with tempfile.TemporaryDirectory(prefix=".relay-catalog-snapshot-", dir=self.path.parent) as tmp:
                copy = sqlite3.connect(os.path.join(tmp, "catalog.sqlite3"))
                try:
                    db.backup(copy)
                finally:
                    copy.close()
                return Path(tmp, "catalog.sqlite3").read_bytes()
        except (sqlite3.Error, OSError) as e:
            logger.info("cannot take a snapshot of the catalog %s: %s", self.path, e)
            return None

    def seed(self, snapshot: bytes) -> bool:
        """Start from `snapshot` (another replica's catalog) when there is no catalog file here yet;
        False if there is one (another process made it meanwhile) or it cannot be written. A bad
        snapshot is a damaged catalog: rebuilt from the manifests when opened."""
        if self._db is not None or self.path.exists():
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            staged = self.path.with_name(f"{self.path.name}.seed-{secrets.token_hex(4)}")
            staged.write_bytes(snapshot)
            try:
                os.link(staged, self.path)  # never over a catalog made meanwhile
            finally:
                staged.unlink()
        except OSError:
            return False
        return True

    def load(self, table: DistTable) -> dict[str, Recorded]:
        """Every recorded export, its dists shared through `table`. Rows that no longer pass the
        contract's checks are left out (their exports are parsed from their manifests)."""
        db = self._connect()
        if db is None:
            return {}
        try:
            entries = dict(db.execute("SELECT id, entry FROM dists").fetchall())
            rows = db.execute("SELECT key, stamp, size, header, dists FROM exports").fetchall()
        except sqlite3.DatabaseError as e:
            logger.warning("rebuilding the store's catalog %s from the manifests: %s", self.path, e)
            self.close()
            self._remove()
            return {}
        self._ids = {text: id_ for id_, text in entries.items()}
        # Per (format, export version if format 1, which checks each dist against it): id -> Dist,
        # so each distinct dist is parsed once however many exports list it.
        dists: dict[tuple[int, str], _Parsed] = {}
        recorded: dict[str, Recorded] = {}
        for key, stamp, size, header_text, blob in rows:
            where = f"{self.path} ({key})"
            try:
                header = json.loads(header_text)
                fmt, version = header.get("format"), header.get("version")
                if not isinstance(fmt, int) or not isinstance(version, str):
                    raise ContractError(f"{where}: no format or version")
                ids = array.array("I")
                ids.frombytes(blob)
                group = (fmt, version if fmt == 1 else "")
                by_id = dists.get(group)
                if by_id is None:
                    by_id = dists[group] = _Parsed(entries, table, fmt, version)
                by_id.where = where
                # At C speed for the dists parsed already: most of an export's are (one changed per commit).
                listed = list(map(by_id.__getitem__, ids))
                export = export_from_parts(header, listed, where)
                recorded[key] = Recorded(stamp=tuple(json.loads(stamp)), export=export, size=int(size))
            except (ContractError, ValueError, TypeError) as e:
                logger.info("the store's catalog has a row it cannot use (%s): its manifest is read", e)
        return recorded

    def write(self, records: Mapping[str, Recorded], removed: Iterable[str] = ()) -> bool:
        """Record exports (replacing their rows) and forget others, in one transaction. False when
        another process holds the file or it cannot be written: the caller tries again later."""
        db = self._connect()
        if db is None:
            return False
        # (id(dist), format) -> its id: a dist shared by many exports (one object, `DistTable`) gets
        # its entry's text made once per write, not once per export that lists it (1.5 M times for
        # 1,500 exports of 1,000 dists). The records keep every dist alive meanwhile.
        known: dict[tuple[int, int], int] = {}
        try:
            with db:  # one transaction: all of it or nothing
                db.execute("BEGIN IMMEDIATE")
                for key in removed:
                    db.execute("DELETE FROM exports WHERE key = ?", (key,))
                for key, record in records.items():
                    ids = array.array("I", self._dist_ids(db, record.export, known))
                    db.execute(
                        "INSERT OR REPLACE INTO exports VALUES (?, ?, ?, ?, ?)",
                        (key, json.dumps(list(record.stamp)), record.size,
                         json.dumps(manifest_header(record.export)), ids.tobytes()),
                    )
            return True
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                return False
            self._give_up(e)
            self.close()
            return False
        except sqlite3.DatabaseError as e:
            logger.warning("rebuilding the store's catalog %s from the manifests: %s", self.path, e)
            self.close()
            self._remove()
            return False

    def _dist_ids(self, db: sqlite3.Connection, export: Export, known: dict[tuple[int, int], int]) -> Sequence[int]:
        ids = []
        for dist in export.dists:
            id_ = known.get((id(dist), export.format))
            if id_ is None:
                text = entry_text(dist_entry(dist, export.format))
                id_ = self._ids.get(text)
                if id_ is None:
                    db.execute("INSERT OR IGNORE INTO dists (entry) VALUES (?)", (text,))
                    id_ = db.execute("SELECT id FROM dists WHERE entry = ?", (text,)).fetchone()[0]
                    self._ids[text] = id_
                known[(id(dist), export.format)] = id_
            ids.append(id_)
        return ids

    def forget_unlisted_dists(self) -> None:
        """Drop dists no export row lists (after evictions); cheap enough to run with eviction."""
        db = self._connect()
        if db is None:
            return
        try:
            with db:
                db.execute("BEGIN IMMEDIATE")
                listed: set[int] = set()
                for (blob,) in db.execute("SELECT dists FROM exports"):
                    ids = array.array("I")
                    ids.frombytes(blob)
                    listed.update(ids)
                unlisted = [(id_,) for (id_,) in db.execute("SELECT id FROM dists") if id_ not in listed]
                db.executemany("DELETE FROM dists WHERE id = ?", unlisted)
            self._ids = {}
        except sqlite3.DatabaseError:
            pass  # another process holds it, or it is rebuilt at the next write

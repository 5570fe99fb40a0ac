"""An export directory staged ahead: the newest earlier export's files linked into a `.tmp-*`
directory on a thread while the exporter works out the new export.

An export after a one-leaf commit keeps all but a few dists of the export before (versions by
content), and the part of writing it that does not depend on what changed, a directory per dist
(`simple/<project>/`) and three hard links each, is most of the write: 1.2-1.9 s of an export of
10,000 dists after a one-dist change in the layout bench, 0.24-0.49 s once staged.
So an exporter starts it (`StagedExport.start`) before it plans; once the dists are known, `take`
keeps the staged files that are this export's bytes and removes the rest, and
`layout.write_export` writes what is missing, the page that lists every project and the manifest
last, into that directory as into a fresh one. A staged file is kept on the terms
`layout.link_sources` links one on: the earlier manifest records the bytes this export wants
(both sha256s; for a page, everything it is made of) and the file has their size.

The directory is a `.tmp-*` sibling like any staging directory: readers ignore it, a crash leaves
nothing that looks complete, and `close` removes it unless the write renamed it into place.
"""
from __future__ import annotations

import errno
import functools
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from export_dists_core.layout import (
    MANIFEST,
    ExportedDist,
    Staged,
    manifest_entries,
    newest_exports,
    page_key,
    page_path,
    project_page,
)

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".tmp-staged-"

# A link that fails for one of these fails for every file: the earlier export is on another file
# system, or this one allows no hard links. Staging stops; the write writes every file.
_NO_LINKS = {errno.EXDEV, errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EROFS}


@dataclass
class _Entry:
    """One earlier dist as staged: what its manifest entry says its files are made of, and the size
    of each file linked (None: not staged)."""

    filename: str
    sha256: object
    metadata_sha256: object
    page_made_of: tuple[object, ...]  # what layout.page_key gives for the dist it lists
    wheel_size: int | None = None
    metadata_size: int | None = None
    page_size: int | None = None

    def kept_for(self, dist: ExportedDist) -> tuple[bool, bool, bool]:
        """Whether the staged wheel, .metadata file and page are `dist`'s bytes."""
        wheel = dist.wheel
        same_file = self.filename == wheel.filename
        page = page_key(dist)
        return (
            same_file and self.sha256 == wheel.sha256 and self.wheel_size == len(wheel.content),
            same_file and self.metadata_sha256 == wheel.metadata_sha256 and self.metadata_size == len(wheel.metadata),
            self.page_made_of == page and self.page_size == len(project_page(page)),
        )


def _plain(name: object) -> bool:
    """A name that is one path segment (a manifest is read, not trusted)."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name


@functools.lru_cache(maxsize=None)
def _stagers() -> ThreadPoolExecutor:
    """The threads that stage, started once per process and kept: in pantsd a thread's start waits
    for the GIL the engine's threads hold (see layout._writers). Two: two exports at once in one
    pantsd do not wait for each other's staging."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="export-dists-staging")


class StagedExport:
    """Stages the newest earlier export of `output_dir` on a thread; see the module docstring."""

    def __init__(self, output_dir: Path, current: Callable[[], str | None]) -> None:
        self._output_dir = output_dir
        self._current = current
        self._stop = threading.Event()
        self._path: Path | None = None
        self._entries: dict[str, _Entry] = {}  # by project
        self._done: Future[None] | None = None
        self.seconds = 0.0  # how long staging took on its thread
        self.waited = 0.0  # how long `take` waited for it

    @classmethod
    def start(cls, output_dir: Path, current: Callable[[], str | None] = lambda: None) -> StagedExport:
        """Start staging. `current` (asked on the thread) names the directory this export will
        most likely write; when it already holds a manifest (a re-export, most likely a no-op),
        nothing is staged."""
        staged = cls(output_dir, current)
        staged._done = _stagers().submit(staged._run)
        return staged

    def _run(self) -> None:
        started = time.monotonic()
        try:
            self._stage()
        except Exception:  # staging is an optimisation: the write does everything without it
            logger.debug("staging an export directory ahead failed", exc_info=True)
            self._discard()
        finally:
            self.seconds = time.monotonic() - started

    def _stage(self) -> None:
        name = self._current()
        if name and os.path.exists(os.path.join(self._output_dir, name, MANIFEST)):
            return
        newest = newest_exports(self._output_dir, besides=name or "")
        if not newest:
            return
        mtime, size, directory = newest[0]
        entries = manifest_entries(directory, mtime, size)
        if not entries:
            return
        self._path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self._output_dir))
        base, staged = os.fspath(directory), os.fspath(self._path)
        os.mkdir(os.path.join(staged, "simple"))
        for entry in entries:
            if self._stop.is_set():
                return
            try:
                project, filename = entry["project"], entry["filename"]
                staged_entry = _Entry(
                    filename,
                    entry["sha256"],
                    entry["metadata_sha256"],
                    (entry["name"], filename, entry["sha256"], entry["requires_python"], entry["metadata_sha256"]),
                )
            except (KeyError, TypeError):
                continue
            if not (_plain(project) and _plain(filename)) or project in self._entries:
                continue
            os.mkdir(os.path.join(staged, "simple", project))
            self._entries[project] = staged_entry
            sizes: list[int | None] = []
            for relpath in (filename, f"{filename}.metadata", page_path(project)):
                target = os.path.join(staged, relpath)
                try:
                    os.link(os.path.join(base, relpath), target)
                except FileNotFoundError:
                    sizes.append(None)
                    continue
                except OSError as e:
                    if e.errno in _NO_LINKS:
                        self._discard()
                        return
                    sizes.append(None)
                    continue
                # The size of the file linked, not of whatever the name holds later.
                sizes.append(os.stat(target).st_size)
            staged_entry.wheel_size, staged_entry.metadata_size, staged_entry.page_size = sizes

    def take(self, dists: Iterable[ExportedDist]) -> Staged | None:
        """Wait for staging, keep the staged files that are these dists' bytes, remove the rest.

        None when nothing was staged (no earlier export, a re-export, links impossible).
        """
        waiting = time.monotonic()
        self._wait()
        self.waited = time.monotonic() - waiting
        if self._path is None:
            return None
        wanted = {dist.project: dist for dist in dists}
        root = os.fspath(self._path)
        kept: set[str] = set()
        for project, entry in self._entries.items():
            dist = wanted.get(project)
            keep = entry.kept_for(dist) if dist is not None else (False, False, False)
            sizes = (entry.wheel_size, entry.metadata_size, entry.page_size)
            relpaths = (entry.filename, f"{entry.filename}.metadata", page_path(project))
            for relpath, size, keeping in zip(relpaths, sizes, keep):
                if keeping:
                    kept.add(relpath)
                elif size is not None:
                    os.unlink(os.path.join(root, relpath))
            if dist is None:
                os.rmdir(os.path.join(root, "simple", project))
        directories = {"simple"} | {f"simple/{p}" for p in self._entries.keys() & wanted.keys()}
        return Staged(self._path, frozenset(kept), frozenset(directories))

    def close(self) -> None:
        """Stop staging and remove the staging directory, unless a write renamed it into place."""
        self._stop.set()
        self._wait()
        self._discard()

    def _wait(self) -> None:
        if self._done is not None:
            self._done.result()  # _run catches what staging raises

    def _discard(self) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
            self._path = None

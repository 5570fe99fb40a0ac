"""An export directory staged ahead: the newest earlier export's files linked into a `.tmp-*`
directory on a thread while the exporter works out the new export.

An export after a one-leaf commit keeps all but a few dists of the export before (versions by
content), and the part of writing it that does not depend on what changed, a directory per dist
(`simple/<project>/`) and three hard links each, is most of the write: about 1 s at 10,000 dists.
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
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable, Hashable, Iterable

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


def file_keys(dist: ExportedDist) -> dict[str, Hashable]:
    """What each file of `dist` in an export directory is, by relative path: equal keys, equal bytes."""
    wheel = dist.wheel
    page = page_key(dist)
    return {
        wheel.filename: ("wheel", wheel.sha256, len(wheel.content)),
        f"{wheel.filename}.metadata": ("metadata", wheel.metadata_sha256, len(wheel.metadata)),
        page_path(dist.project): ("page", page, len(project_page(page))),
    }


def _plain(name: object) -> bool:
    """A name that is one path segment (a manifest is read, not trusted)."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name


class StagedExport:
    """Stages the newest earlier export of `output_dir` on a thread; see the module docstring."""

    def __init__(self, output_dir: Path, current: Callable[[], str | None]) -> None:
        self._output_dir = output_dir
        self._current = current
        self._stop = threading.Event()
        self._path: Path | None = None
        self._keys: dict[str, Hashable] = {}
        self._projects: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="export-dists-staging", daemon=True)

    @classmethod
    def start(cls, output_dir: Path, current: Callable[[], str | None] = lambda: None) -> StagedExport:
        """Start staging. `current` (asked on the thread) names the directory this export will
        most likely write; when it already holds a manifest (a re-export, most likely a no-op),
        nothing is staged."""
        staged = cls(output_dir, current)
        staged._thread.start()
        return staged

    def _run(self) -> None:
        try:
            self._stage()
        except Exception:  # staging is an optimisation: the write does everything without it
            logger.debug("staging an export directory ahead failed", exc_info=True)
            self._discard()

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
                files = (
                    (filename, ("wheel", entry["sha256"])),
                    (f"{filename}.metadata", ("metadata", entry["metadata_sha256"])),
                    (
                        page_path(project),
                        ("page", (entry["name"], filename, entry["sha256"], entry["requires_python"], entry["metadata_sha256"])),
                    ),
                )
            except (KeyError, TypeError):
                continue
            if not (_plain(project) and _plain(filename)) or project in self._projects:
                continue
            os.mkdir(os.path.join(staged, "simple", project))
            self._projects.add(project)
            for relpath, (kind, made_of) in files:
                target = os.path.join(staged, relpath)
                try:
                    os.link(os.path.join(base, relpath), target)
                except FileNotFoundError:
                    continue
                except OSError as e:
                    if e.errno in _NO_LINKS:
                        self._discard()
                        return
                    continue
                # The size of the file linked, not of whatever the name holds later.
                self._keys[relpath] = (kind, made_of, os.stat(target).st_size)

    def take(self, dists: Iterable[ExportedDist]) -> Staged | None:
        """Wait for staging, keep the staged files that are these dists' bytes, remove the rest.

        None when nothing was staged (no earlier export, a re-export, links impossible).
        """
        self._thread.join()
        if self._path is None:
            return None
        wanted: dict[str, Hashable] = {}
        projects = set()
        for dist in dists:
            wanted.update(file_keys(dist))
            projects.add(dist.project)
        root = os.fspath(self._path)
        kept = set()
        for relpath, key in self._keys.items():
            if wanted.get(relpath) == key:
                kept.add(relpath)
            else:
                os.unlink(os.path.join(root, relpath))
        for project in self._projects - projects:
            os.rmdir(os.path.join(root, "simple", project))
        directories = {"simple"} | {f"simple/{p}" for p in self._projects & projects}
        return Staged(self._path, frozenset(kept), frozenset(directories))

    def close(self) -> None:
        """Stop staging and remove the staging directory, unless a write renamed it into place."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._discard()

    def _discard(self) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
            self._path = None

"""The export directory: manifest.json, wheels, .metadata files and a static simple/ tree.

This module is the goal's side of the contract documented in docs/design.md; the relay reads the
same layout through relay/contract.py.
"""
from __future__ import annotations

import functools
import html
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping

from export_dists_core.naming import normalize
from export_dists_core.wheel import Wheel

# Format 1: every dist has the export's version (version_scheme = "commit"). Format 2: each dist
# has its own version, origin commit and content fingerprint (version_scheme = "content").
FORMAT = 1
CONTENT_FORMAT = 2
MANIFEST = "manifest.json"
# How many of the newest earlier exports in an output directory unchanged files are linked from.
_LINK_SOURCES = 2
# A staging directory (`.tmp-*`) or a replaced export being removed (`.old-*`) this much older than
# its last change was left by a process that died: the next write removes it. No export, however
# large, leaves its staging directory untouched for a day (the relay's own staging uses the same bound).
STALE_SECONDS = 24 * 3600
# Rendered manifest entries and project pages kept per process (pantsd exports one commit after
# another, and all but a few dists are unchanged): a bound above the largest exports measured.
_RENDERED = 32_768


@functools.lru_cache(maxsize=_RENDERED)
def _project(name: str) -> str:
    # Asked for every file of every dist: the regular expression once per name.
    return normalize(name)


@dataclass(frozen=True)
class ExportedDist:
    name: str
    version: str
    address: str
    wheel: Wheel
    requires_dist: tuple[str, ...]
    requires_python: str | None
    # Format 2 only: the commit the version names, the content fingerprint, and whether the files
    # differ from that commit (uncommitted changes).
    origin: str | None = None
    fingerprint: str | None = None
    dirty: bool = False

    @property
    def project(self) -> str:
        return _project(self.name)


@dataclass(frozen=True)
class ExportInfo:
    sha: str
    version: str
    count: int
    namespace: str
    dirty: bool
    branches: tuple[str, ...]
    tags: tuple[str, ...]
    commit_time: str
    version_scheme: str = "commit"

    @property
    def format(self) -> int:
        return CONTENT_FORMAT if self.version_scheme == "content" else FORMAT

    @property
    def directory_name(self) -> str:
        return f"{self.sha}.dirty" if self.dirty else self.sha


def _dist_entry(dist: ExportedDist, fmt: int) -> dict[str, Any]:
    entry = {
        "name": dist.name,
        "project": dist.project,
        "version": dist.version,
        "filename": dist.wheel.filename,
        "sha256": dist.wheel.sha256,
        "size": len(dist.wheel.content),
        "metadata_sha256": dist.wheel.metadata_sha256,
        "metadata_size": len(dist.wheel.metadata),
        "requires_dist": list(dist.requires_dist),
        "requires_python": dist.requires_python,
        "address": dist.address,
    }
    if fmt >= CONTENT_FORMAT:
        entry.update(origin=dist.origin, fingerprint=dist.fingerprint, dirty=dist.dirty)
    return entry


def manifest_document(info: ExportInfo, dists: Iterable[ExportedDist]) -> dict[str, Any]:
    document = {
        "format": info.format,
        "sha": info.sha,
        "version": info.version,
        "count": info.count,
        "namespace": info.namespace,
        "dirty": info.dirty,
        "branches": list(info.branches),
        "tags": list(info.tags),
        "commit_time": info.commit_time,
        "dists": [_dist_entry(dist, info.format) for dist in sorted(dists, key=lambda d: d.project)],
    }
    if info.format >= CONTENT_FORMAT:
        document["version_scheme"] = info.version_scheme
    return document


def manifest_bytes(info: ExportInfo, dists: Iterable[ExportedDist]) -> bytes:
    """manifest.json as written: `json.dumps(manifest_document(...), indent=2, sort_keys=True)`.

    The same bytes, made from one rendered entry per dist, which a process keeps: json's indented
    output is its pure-Python encoder (0.15-0.5 s for 10,000 dists), and an export after a one-leaf
    commit has all but a few entries of the one before.
    """
    document = manifest_document(info, ())
    entries = [_entry_json(_hashable(_dist_entry(d, info.format))) for d in sorted(dists, key=lambda d: d.project)]
    members = []
    for key in sorted(document):
        if key == "dists" and entries:
            value = "[\n    " + ",\n    ".join(entries) + "\n  ]"
        else:
            value = _indented(document[key], "\n  ")
        members.append(f"  {json.dumps(key)}: {value}")
    return ("{\n" + ",\n".join(members) + "\n}\n").encode()


def _indented(value: object, newline: str) -> str:
    """`value` as json.dumps(indent=2, sort_keys=True) renders it nested one level deeper per
    two spaces of `newline` (encoded strings hold no raw newline, so every newline is layout)."""
    return json.dumps(value, indent=2, sort_keys=True).replace("\n", newline)


def _hashable(entry: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    return tuple((key, tuple(value) if isinstance(value, list) else value) for key, value in entry.items())


@functools.lru_cache(maxsize=_RENDERED)
def _entry_json(items: tuple[tuple[str, object], ...]) -> str:
    # json renders a tuple as it renders a list.
    return _indented(dict(items), "\n    ")


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '<meta name="pypi:repository-version" content="1.1">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


def page_key(dist: ExportedDist) -> tuple[str, str, str, str | None, str]:
    """What a project page is made of (manifest entries record each): equal keys, equal pages."""
    return (dist.name, dist.wheel.filename, dist.wheel.sha256, dist.requires_python, dist.wheel.metadata_sha256)


@functools.lru_cache(maxsize=_RENDERED)
def project_page(key: tuple[str, str, str, str | None, str]) -> bytes:
    name, filename, sha256, requires_python, metadata_sha256 = key
    attrs = [f'href="../../{filename}#sha256={sha256}"']
    if requires_python:
        attrs.append(f'data-requires-python="{html.escape(requires_python)}"')
    attrs.append(f'data-dist-info-metadata="sha256={metadata_sha256}"')
    attrs.append(f'data-core-metadata="sha256={metadata_sha256}"')
    link = f"<a {' '.join(attrs)}>{html.escape(filename)}</a><br>\n"
    return _page(f"Links for {name}", link).encode()


def page_path(project: str) -> str:
    return f"simple/{project}/index.html"


def simple_tree(dists: Iterable[ExportedDist]) -> dict[str, str]:
    """The static PEP 503 pages, keyed by path under the export directory."""
    return {path: page.decode() for path, page in _simple_pages(dists).items()}


def _simple_pages(dists: Iterable[ExportedDist]) -> dict[str, bytes]:
    ordered = sorted(dists, key=lambda d: d.project)
    pages: dict[str, bytes] = {}
    root_links = "".join(
        f'<a href="{dist.project}/">{html.escape(dist.name)}</a><br>\n' for dist in ordered
    )
    pages["simple/index.html"] = _page("Simple index", root_links).encode()
    for dist in ordered:
        pages[page_path(dist.project)] = project_page(page_key(dist))
    return pages


def export_files(info: ExportInfo, dists: Iterable[ExportedDist]) -> dict[str, bytes]:
    """Every file of one export directory, keyed by relative path; manifest.json included."""
    dists = tuple(dists)
    files: dict[str, bytes] = {}
    for dist in dists:
        files[dist.wheel.filename] = dist.wheel.content
        files[f"{dist.wheel.filename}.metadata"] = dist.wheel.metadata
    files.update(_simple_pages(dists))
    files[MANIFEST] = manifest_bytes(info, dists)
    return files


def earlier_dists(directory: Path, info: ExportInfo, *, besides: Collection[str] = ()) -> tuple[ExportedDist, ...]:
    """The dists an earlier export of the same clean commit wrote to `directory`, but `besides`.

    Exports of one commit with the same namespace and version are deterministic, so an export of
    fewer targets (`pants export-dists src/python/a`) adds to an earlier one (`::`) rather than
    dropping its dists from a store that serves them. A dirty export is not: it always replaces.
    Entries whose files are missing or do not match the manifest are dropped. Projects in
    `besides` (the new export's own) are not read at all: a no-op re-export stays cheap.
    """
    if info.dirty:
        return ()
    try:
        document = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return ()
    if not isinstance(document, dict) or (
        document.get("format"),
        document.get("sha"),
        document.get("version"),
        document.get("namespace"),
        document.get("dirty"),
    ) != (info.format, info.sha, info.version, info.namespace, False):
        return ()
    found = []
    for entry in document.get("dists", []):
        try:
            if entry["project"] in besides:
                continue
            content = (directory / entry["filename"]).read_bytes()
            metadata = (directory / f"{entry['filename']}.metadata").read_bytes()
            wheel = Wheel(filename=entry["filename"], content=content, metadata=metadata)
            if (wheel.sha256, wheel.metadata_sha256) != (entry["sha256"], entry["metadata_sha256"]):
                continue
            found.append(
                ExportedDist(
                    name=entry["name"],
                    version=entry["version"],
                    address=entry["address"],
                    wheel=wheel,
                    requires_dist=tuple(entry["requires_dist"]),
                    requires_python=entry["requires_python"],
                    origin=entry.get("origin"),
                    fingerprint=entry.get("fingerprint"),
                    dirty=bool(entry.get("dirty", False)),
                )
            )
        except (OSError, KeyError, TypeError):
            continue
    return tuple(found)


@dataclass(frozen=True)
class WriteResult:
    path: Path
    written: bool  # False when an identical export was already there
    linked: int = 0  # files hard-linked from earlier exports instead of written
    linked_wheels: int = 0  # of which wheels


def link_sources(output_dir: Path, directory_name: str, dists: Iterable[ExportedDist]) -> dict[str, str]:
    """Files of earlier exports in `output_dir` that this export can hard-link instead of writing.

    An unchanged dist keeps its file name and bytes across commits (version_scheme = "content"),
    so a store holds it once, however many exports list it, and an export after a one-leaf commit
    writes only what changed. The newest earlier exports (by their manifest's time) are looked at;
    a wheel or .metadata file counts only when its manifest records the same sha256 and it has
    that size on disk; a project page when the manifest entry records everything the page is made
    of (name, file name, both sha256s, Requires-Python) and the page has this export's page's size.
    """
    wanted = {d.wheel.filename: d for d in dists}
    sources: dict[str, str] = {}
    found: set[str] = set()
    if not wanted:
        return sources
    for mtime, size, directory in newest_exports(output_dir, besides=directory_name)[:_LINK_SOURCES]:
        if len(found) == len(wanted):
            break
        entries = manifest_entries(directory, mtime, size)
        if entries is None:
            continue
        # Plain strings, not Paths: this runs for every file of every dist.
        base = os.fspath(directory)
        for entry in entries:
            try:
                dist = wanted.get(entry["filename"])
                if dist is None or dist.wheel.filename in found:
                    continue
                if (entry["sha256"], entry["metadata_sha256"]) != (dist.wheel.sha256, dist.wheel.metadata_sha256):
                    continue
                wheel = os.path.join(base, entry["filename"])
                metadata = f"{wheel}.metadata"
                if os.stat(wheel).st_size != len(dist.wheel.content) or os.stat(metadata).st_size != len(
                    dist.wheel.metadata
                ):
                    continue
                found.add(dist.wheel.filename)
                sources[dist.wheel.filename] = wheel
                sources[f"{dist.wheel.filename}.metadata"] = metadata
                if (entry["name"], entry["requires_python"]) != (dist.name, dist.requires_python):
                    continue
                page = os.path.join(base, page_path(dist.project))
                if os.stat(page).st_size == len(project_page(page_key(dist))):
                    sources[page_path(dist.project)] = page
            except (OSError, KeyError, TypeError):
                continue
    return sources


def newest_exports(output_dir: Path, *, besides: str = "") -> list[tuple[int, int, Path]]:
    """The export directories in `output_dir` but `besides`, newest first by their manifest's time:
    (manifest mtime in ns, manifest size, directory). Staging directories (`.`) are not exports."""
    candidates: list[tuple[int, int, Path]] = []
    try:
        for entry in os.scandir(output_dir):
            if entry.name.startswith(".") or entry.name == besides or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                stat = os.stat(os.path.join(entry.path, MANIFEST))
            except OSError:
                continue
            candidates.append((stat.st_mtime_ns, stat.st_size, Path(entry.path)))
    except OSError:
        return []
    return sorted(candidates, reverse=True)


@functools.lru_cache(maxsize=_LINK_SOURCES + 1)
def manifest_entries(directory: Path, mtime_ns: int, size: int) -> list[Any] | None:
    """The dist entries of an export's manifest.json, or None when unreadable. Cached by the
    manifest's time and size (a written export is never changed in place, only replaced): the export
    after this one links from the same manifests, and parsing one of 10,000 dists takes 0.1-0.2 s."""
    try:
        entries = json.loads((directory / MANIFEST).read_text())["dists"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return entries if isinstance(entries, list) else None


def write_export(
    output_dir: Path,
    directory_name: str,
    files: Mapping[str, bytes],
    links: Mapping[str, str | Path] | None = None,
    staged: Staged | None = None,
) -> WriteResult:
    """Write an export directory atomically: a temporary sibling, renamed into place when complete.

    Files in `links` are hard-linked from there (an earlier export holding the same bytes) rather
    than written; where a link fails (another file system), they are written. `staged` is such a
    sibling already holding some of `files` (staging.py: linked ahead from an earlier export); the
    rest go into it the same way. A crash leaves only a `.tmp-*` directory, which readers ignore.
    An existing export of the same commit is kept as it is when identical, and replaced
    atomically when not (a dirty re-export, or more dists: see `earlier_dists`).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale(output_dir)
    final = output_dir / directory_name
    if final.is_dir() and _same_export(final, files):
        return WriteResult(final, written=False)
    if staged is not None:
        staging, present, directories = staged.path, staged.files, staged.directories
    else:
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{directory_name}-", dir=output_dir))
        present = directories = frozenset()
    try:
        _make_directories(staging, files, directories)
        linked = _link_files(
            staging, {p: source for p, source in (links or {}).items() if p in files and p not in present}
        )
        linked |= present
        _write_files(staging, {p: d for p, d in files.items() if p != MANIFEST and p not in linked})
        # manifest.json last: a reader that sees it sees a complete directory.
        _write_files(staging, {MANIFEST: files[MANIFEST]})
        os.chmod(staging, 0o755)
        if final.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".old-{directory_name}-", dir=output_dir))
            os.rename(final, retired / "export")
            os.rename(staging, final)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    wheels = sum(1 for p in linked if p.endswith(".whl"))
    return WriteResult(final, written=True, linked=len(linked), linked_wheels=wheels)


@dataclass(frozen=True)
class Staged:
    """A staging directory (`.tmp-*` in the output directory) that already holds `files` (relative
    paths, each the bytes the export wants) and `directories`: what staging.StagedExport leaves."""

    path: Path
    files: frozenset[str]
    directories: frozenset[str]

    def holds(self, dist: ExportedDist) -> bool:
        """Whether every file of `dist` is staged already (nothing of it to link or write)."""
        filename = dist.wheel.filename
        return {filename, f"{filename}.metadata", page_path(dist.project)} <= self.files


def _remove_stale(output_dir: Path) -> None:
    """Remove what a write that died left in `output_dir` (see STALE_SECONDS)."""
    now = time.time()
    try:
        entries = list(os.scandir(output_dir))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith((".tmp-", ".old-")):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime <= STALE_SECONDS or not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)


def _make_directories(root: Path, files: Iterable[str], present: Collection[str] = ()) -> None:
    base = os.fspath(root)
    # Parents sort before their children. One directory per dist (simple/<project>/) is most of
    # what an export after a one-leaf commit costs: a new inode and block each, where a link is not.
    for directory in sorted({os.path.dirname(p) for p in files} - {""} - set(present)):
        try:
            os.mkdir(os.path.join(base, directory))
        except FileNotFoundError:
            os.makedirs(os.path.join(base, directory), exist_ok=True)


def _link_files(root: Path, links: Mapping[str, str | Path]) -> set[str]:
    base = os.fspath(root)
    linked = set()
    for relpath, source in sorted(links.items()):
        try:
            os.link(source, os.path.join(base, relpath))
        except OSError:
            continue  # written instead
        linked.add(relpath)
    return linked


# A batch this small is written on the calling thread: handing it to the writers costs more.
_INLINE_WRITES = 8


@functools.lru_cache(maxsize=None)
def _writers() -> ThreadPoolExecutor:
    """The threads that write an export's files, started once per process and kept: in pantsd,
    starting a thread waits for the GIL the engine's threads hold, 40 ms a start at 3,000 targets
    (py-spy), longer than writing the files of a one-leaf commit."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="export-dists-write")


def _write_files(root: Path, files: Mapping[str, bytes]) -> None:
    base = os.fspath(root)

    def write(relpath: str) -> None:
        fd = os.open(os.path.join(base, relpath), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, files[relpath])
        finally:
            os.close(fd)

    if len(files) <= _INLINE_WRITES:
        for relpath in sorted(files):
            write(relpath)
        return
    # Thousands of small files: the writes release the GIL, so a few threads overlap them.
    for _ in _writers().map(write, sorted(files)):
        pass


def _same_export(directory: Path, files: Mapping[str, bytes]) -> bool:
    """Whether `directory` already holds exactly this export.

    The manifest records the sha256 of every wheel and metadata file and the pages derive from
    it, so equal manifests plus every expected file present (at its size) is equality, without
    reading thousands of files again.
    """
    manifest = directory / MANIFEST
    try:
        if manifest.read_bytes() != files[MANIFEST]:
            return False
        return all((directory / p).stat().st_size == len(d) for p, d in files.items())
    except OSError:
        return False

"""The export directory: manifest.json, wheels, .metadata files and a static simple/ tree.

This module is the goal's side of the contract documented in docs/design.md; the relay reads the
same layout through relay/contract.py.
"""
from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
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
# How many of the newest earlier exports in an output directory unchanged wheels are linked from.
_LINK_SOURCES = 2


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
        return normalize(self.name)


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


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '<meta name="pypi:repository-version" content="1.1">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


def simple_tree(dists: Iterable[ExportedDist]) -> dict[str, str]:
    """The static PEP 503 pages, keyed by path under the export directory."""
    ordered = sorted(dists, key=lambda d: d.project)
    pages: dict[str, str] = {}
    root_links = "".join(
        f'<a href="{dist.project}/">{html.escape(dist.name)}</a><br>\n' for dist in ordered
    )
    pages["simple/index.html"] = _page("Simple index", root_links)
    for dist in ordered:
        wheel = dist.wheel
        attrs = [f'href="../../{wheel.filename}#sha256={wheel.sha256}"']
        if dist.requires_python:
            attrs.append(f'data-requires-python="{html.escape(dist.requires_python)}"')
        attrs.append(f'data-dist-info-metadata="sha256={wheel.metadata_sha256}"')
        attrs.append(f'data-core-metadata="sha256={wheel.metadata_sha256}"')
        link = f"<a {' '.join(attrs)}>{html.escape(wheel.filename)}</a><br>\n"
        pages[f"simple/{dist.project}/index.html"] = _page(f"Links for {dist.name}", link)
    return pages


def export_files(info: ExportInfo, dists: Iterable[ExportedDist]) -> dict[str, bytes]:
    """Every file of one export directory, keyed by relative path; manifest.json included."""
    dists = tuple(dists)
    files: dict[str, bytes] = {}
    for dist in dists:
        files[dist.wheel.filename] = dist.wheel.content
        files[f"{dist.wheel.filename}.metadata"] = dist.wheel.metadata
    for path, page in simple_tree(dists).items():
        files[path] = page.encode()
    document = manifest_document(info, dists)
    files[MANIFEST] = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
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


def link_sources(output_dir: Path, directory_name: str, dists: Iterable[ExportedDist]) -> dict[str, Path]:
    """Files of earlier exports in `output_dir` that this export can hard-link instead of writing.

    An unchanged dist keeps its file name and bytes across commits (version_scheme = "content"),
    so a store holds it once, however many exports list it. The newest earlier exports (by their
    manifest's time) are looked at; a file counts only when its manifest records the same sha256
    and it has that size on disk.
    """
    wanted = {d.wheel.filename: d for d in dists}
    candidates: list[tuple[int, Path]] = []
    try:
        for entry in os.scandir(output_dir):
            if entry.name.startswith(".") or entry.name == directory_name or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                candidates.append((os.stat(os.path.join(entry.path, MANIFEST)).st_mtime_ns, Path(entry.path)))
            except OSError:
                continue
    except OSError:
        return {}
    sources: dict[str, Path] = {}
    for _, directory in sorted(candidates, reverse=True)[:_LINK_SOURCES]:
        try:
            document = json.loads((directory / MANIFEST).read_text())
            entries = document["dists"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for entry in entries:
            try:
                dist = wanted.get(entry["filename"])
                if dist is None or dist.wheel.filename in sources:
                    continue
                if (entry["sha256"], entry["metadata_sha256"]) != (dist.wheel.sha256, dist.wheel.metadata_sha256):
                    continue
                wheel, metadata = directory / entry["filename"], directory / f"{entry['filename']}.metadata"
                if wheel.stat().st_size == len(dist.wheel.content) and metadata.stat().st_size == len(
                    dist.wheel.metadata
                ):
                    sources[dist.wheel.filename] = wheel
                    sources[f"{dist.wheel.filename}.metadata"] = metadata
            except (OSError, KeyError, TypeError):
                continue
    return sources


def write_export(
    output_dir: Path,
    directory_name: str,
    files: Mapping[str, bytes],
    links: Mapping[str, Path] | None = None,
) -> WriteResult:
    """Write an export directory atomically: a temporary sibling, renamed into place when complete.

    Files in `links` are hard-linked from there (an earlier export holding the same bytes) rather
    than written; where a link fails (another file system), they are written. A crash leaves only
    a `.tmp-*` directory, which readers ignore. An existing export of the same commit is kept as it
    is when identical, and replaced atomically when not (a dirty re-export, or more dists: see
    `earlier_dists`).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / directory_name
    if final.is_dir() and _same_export(final, files):
        return WriteResult(final, written=False)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{directory_name}-", dir=output_dir))
    try:
        linked = _link_files(staging, links or {})
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
    return WriteResult(final, written=True, linked=len(linked))


def _link_files(root: Path, links: Mapping[str, Path]) -> set[str]:
    linked = set()
    for relpath, source in sorted(links.items()):
        try:
            os.link(source, root / relpath)
        except OSError:
            continue  # written instead
        linked.add(relpath)
    return linked


def _write_files(root: Path, files: Mapping[str, bytes]) -> None:
    for directory in sorted({os.path.dirname(p) for p in files} - {""}):
        (root / directory).mkdir(parents=True, exist_ok=True)

    def write(relpath: str) -> None:
        fd = os.open(root / relpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, files[relpath])
        finally:
            os.close(fd)

    # Thousands of small files: the writes release the GIL, so a few threads overlap them.
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in pool.map(write, sorted(files)):
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

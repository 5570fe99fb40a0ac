"""The export directory contract (formats 1 and 2): reading and validating `manifest.json`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

# Format 1: every dist has the export's version. Format 2 (version_scheme = "content"): each dist
# has its own version, the origin commit it names and a content fingerprint.
FORMAT = 1
CONTENT_FORMAT = 2
FORMATS = (FORMAT, CONTENT_FORMAT)
MANIFEST = "manifest.json"
METADATA_SUFFIX = ".metadata"
DIRTY_SUFFIX = ".dirty"

_SHA = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# A file name the relay will ever serve: one path segment, no leading dot, a wheel.
_WHEEL_FILENAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+!-]*\.whl")


class ContractError(ValueError):
    """An export directory that does not follow docs/design.md's contract."""


@dataclass(frozen=True)
class Dist:
    """One wheel of an export, as its manifest entry describes it."""

    name: str
    project: str
    version: str
    filename: str
    sha256: str
    size: int
    metadata_sha256: str
    metadata_size: int
    requires_dist: tuple[str, ...]
    requires_python: str | None
    address: str
    # Format 2: the commit the version names, the content fingerprint, uncommitted changes.
    origin: str | None = None
    fingerprint: str | None = None
    dirty: bool = False

    @property
    def metadata_filename(self) -> str:
        return self.filename + METADATA_SUFFIX


@dataclass(frozen=True)
class Export:
    """One export directory: every dist built from one commit."""

    sha: str
    version: str
    count: int
    namespace: str
    dirty: bool
    branches: tuple[str, ...]
    tags: tuple[str, ...]
    commit_time: str
    dists: tuple[Dist, ...]
    format: int = FORMAT
    _by_project: Mapping[str, Dist] = field(init=False, repr=False, compare=False)
    filenames: frozenset[str] = field(init=False, repr=False, compare=False)
    _digests: Mapping[str, tuple[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived lookups, computed once: the relay asks them on every request.
        object.__setattr__(self, "_by_project", {d.project: d for d in self.dists})
        files = frozenset(n for d in self.dists for n in (d.filename, d.metadata_filename))
        object.__setattr__(self, "filenames", files)
        digests = {d.filename: (d.sha256, d.size) for d in self.dists}
        digests.update({d.metadata_filename: (d.metadata_sha256, d.metadata_size) for d in self.dists})
        object.__setattr__(self, "_digests", digests)

    @property
    def key(self) -> str:
        """The directory name: the sha, or `<sha>.dirty` so a dirty tree is never taken for the commit."""
        return self.sha + DIRTY_SUFFIX if self.dirty else self.sha

    def dist(self, project: str) -> Dist | None:
        return self._by_project.get(project)

    def digest(self, filename: str) -> tuple[str, int] | None:
        """The sha256 and size the manifest records for one of its files."""
        return self._digests.get(filename)

    @property
    def projects(self) -> tuple[str, ...]:
        return tuple(self._by_project)

    @property
    def files(self) -> Mapping[str, tuple[str, int]]:
        """Every wheel and .metadata file the manifest lists: filename -> (sha256, size)."""
        return self._digests

    def size(self, manifest_bytes: int) -> int:
        """The export's size as every store counts it (docs/design.md, "An export's size"): its
        manifest plus the wheel and .metadata files it lists. The static `simple/` tree is not
        counted: it is derived from the manifest, and an object store does not keep it."""
        return manifest_bytes + sum(size for _, size in self._digests.values())


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ContractError(f"{where}: missing field {key!r}")
    value = data[key]
    # bool is an int in Python; a count of `true` is still wrong.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int,))):
        raise ContractError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _str_list(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    values = _get(data, key, list, where)
    if not all(isinstance(v, str) for v in values):
        raise ContractError(f"{where}: field {key!r} must be a list of strings")
    return tuple(values)


def _parse_dist(data: Any, export_version: str, fmt: int, where: str) -> Dist:
    if not isinstance(data, dict):
        raise ContractError(f"{where}: a dist entry must be an object")
    name = _get(data, "name", str, where)
    where = f"{where}: dist {name!r}"
    project = _get(data, "project", str, where)
    if canonicalize_name(name) != project:
        raise ContractError(f"{where}: project {project!r} is not the normalized name")
    version = _get(data, "version", str, where)
    origin = fingerprint = None
    dirty = False
    if fmt == FORMAT and version != export_version:
        raise ContractError(f"{where}: version {version!r} differs from the export's {export_version!r}")
    if fmt == CONTENT_FORMAT:
        try:
            Version(version)
        except InvalidVersion:
            raise ContractError(f"{where}: version {version!r} is not a PEP 440 version") from None
        origin = _get(data, "origin", str, where)
        if not _SHA.fullmatch(origin):
            raise ContractError(f"{where}: origin {origin!r} is not 40 lowercase hex digits")
        fingerprint = _get(data, "fingerprint", str, where)
        if not _SHA256.fullmatch(fingerprint):
            raise ContractError(f"{where}: fingerprint is not 64 lowercase hex digits")
        dirty = _get(data, "dirty", bool, where)
    filename = _get(data, "filename", str, where)
    if not _WHEEL_FILENAME.fullmatch(filename):
        raise ContractError(f"{where}: filename {filename!r} is not a plain wheel file name")
    for key in ("sha256", "metadata_sha256"):
        if not _SHA256.fullmatch(_get(data, key, str, where)):
            raise ContractError(f"{where}: {key} is not 64 lowercase hex digits")
    sizes = [_get(data, key, int, where) for key in ("size", "metadata_size")]
    if min(sizes) < 0:
        raise ContractError(f"{where}: negative size")
    requires_dist = _str_list(data, "requires_dist", where)
    for requirement in requires_dist:
        try:
            Requirement(requirement)
        except InvalidRequirement as e:
            raise ContractError(f"{where}: bad requirement {requirement!r}: {e}") from None
    requires_python = data.get("requires_python")
    if requires_python is not None:
        if not isinstance(requires_python, str):
            raise ContractError(f"{where}: requires_python must be a string or null")
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier:
            raise ContractError(f"{where}: bad requires_python {requires_python!r}") from None
    return Dist(
        name=name,
        project=project,
        version=version,
        filename=filename,
        sha256=data["sha256"],
        size=sizes[0],
        metadata_sha256=data["metadata_sha256"],
        metadata_size=sizes[1],
        requires_dist=requires_dist,
        requires_python=requires_python,
        address=_get(data, "address", str, where),
        origin=origin,
        fingerprint=fingerprint,
        dirty=dirty,
    )


def parse_manifest(raw: bytes, where: str) -> Export:
    """Parse and validate manifest bytes; `where` names the file in error messages."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ContractError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ContractError(f"{where}: the manifest must be a JSON object")
    fmt = data.get("format")
    if fmt not in FORMATS or isinstance(fmt, bool):
        raise ContractError(
            f"{where}: format {fmt!r} is not supported (this relay reads formats {', '.join(map(str, FORMATS))})"
        )
    sha = _get(data, "sha", str, where)
    if not _SHA.fullmatch(sha):
        raise ContractError(f"{where}: sha {sha!r} is not 40 lowercase hex digits")
    version = _get(data, "version", str, where)
    try:
        Version(version)
    except InvalidVersion:
        raise ContractError(f"{where}: version {version!r} is not a PEP 440 version") from None
    count = _get(data, "count", int, where)
    raw_dists = _get(data, "dists", list, where)
    dists = tuple(_parse_dist(d, version, fmt, where) for d in raw_dists)
    projects = [d.project for d in dists]
    if len(set(projects)) != len(projects):
        raise ContractError(f"{where}: a project is listed twice")
    return Export(
        sha=sha,
        version=version,
        count=count,
        namespace=_get(data, "namespace", str, where),
        dirty=_get(data, "dirty", bool, where),
        branches=_str_list(data, "branches", where),
        tags=_str_list(data, "tags", where),
        commit_time=_get(data, "commit_time", str, where),
        dists=tuple(sorted(dists, key=lambda d: d.project)),
        format=fmt,
    )


def read_export(directory: Path) -> Export:
    """Read `<directory>/manifest.json` and check it belongs to that directory."""
    manifest = directory / MANIFEST
    try:
        raw = manifest.read_bytes()
    except OSError as e:
        raise ContractError(f"{manifest}: cannot be read ({e.strerror})") from None
    export = parse_manifest(raw, str(manifest))
    if export.key != directory.name:
        raise ContractError(
            f"{manifest}: names commit {export.key!r} but lies in directory {directory.name!r}"
        )
    return export


def manifest_json(export: Export) -> str:
    """The manifest text for an export (what a writer of the contract puts in manifest.json)."""
    data: dict[str, Any] = {
        "format": export.format,
        "sha": export.sha,
        "version": export.version,
        "count": export.count,
        "namespace": export.namespace,
        "dirty": export.dirty,
        "branches": list(export.branches),
        "tags": list(export.tags),
        "commit_time": export.commit_time,
        "dists": [],
    }
    if export.format == CONTENT_FORMAT:
        data["version_scheme"] = "content"
    for d in export.dists:
        entry: dict[str, Any] = {
            "name": d.name,
            "project": d.project,
            "version": d.version,
            "filename": d.filename,
            "sha256": d.sha256,
            "size": d.size,
            "metadata_sha256": d.metadata_sha256,
            "metadata_size": d.metadata_size,
            "requires_dist": list(d.requires_dist),
            "requires_python": d.requires_python,
            "address": d.address,
        }
        if export.format == CONTENT_FORMAT:
            entry.update(origin=d.origin, fingerprint=d.fingerprint, dirty=d.dirty)
        data["dists"].append(entry)
    return json.dumps(data, indent=2, sort_keys=False) + "\n"

"""The export directory contract (formats 1 and 2): reading and validating `manifest.json`."""

from __future__ import annotations

import bisect
import functools
import json
import operator
import re
import threading
import weakref
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

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


def wheel_project(filename: str) -> str:
    """The normalized project a wheel file name starts with."""
    return canonicalize_name(filename.split("-", 1)[0])


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
    # The file name starts with the project's wheel name (`-` and `.` as `_`), as the wheel spec
    # says: an export then finds a file's dist by its name, with no table of its own.
    wheel_named: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "wheel_named", wheel_project(self.filename) == self.project)

    @property
    def metadata_filename(self) -> str:
        return self.filename + METADATA_SUFFIX


_PROJECT = operator.attrgetter("project")
_WHEEL_NAMED = operator.attrgetter("wheel_named")


@dataclass(frozen=True)
class Export:
    """One export directory: every dist built from one commit.

    Its lookups are computed from `dists` without a table per export (a branch's history holds
    thousands of exports of mostly the same dists: memory follows the distinct dists, see DistTable).
    """

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
    # The dists' projects in order, for a binary search (dists are sorted by project).
    _projects: tuple[str, ...] = field(init=False, repr=False, compare=False)
    # Only for an export whose file names do not start with their project's wheel name.
    _by_filename: Mapping[str, Dist] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # map() and operator keep this at C speed: a restart builds thousands of exports.
        dists = self.dists
        projects = tuple(map(_PROJECT, dists))
        if not all(map(operator.lt, projects, projects[1:])):
            dists = tuple(sorted(dists, key=_PROJECT))
            object.__setattr__(self, "dists", dists)
            projects = tuple(map(_PROJECT, dists))
        object.__setattr__(self, "_projects", projects)
        regular = all(map(_WHEEL_NAMED, dists))
        object.__setattr__(self, "_by_filename", None if regular else {d.filename: d for d in dists})

    @property
    def key(self) -> str:
        """The directory name: the sha, or `<sha>.dirty` so a dirty tree is never taken for the commit."""
        return self.sha + DIRTY_SUFFIX if self.dirty else self.sha

    def dist(self, project: str) -> Dist | None:
        i = bisect.bisect_left(self._projects, project)
        if i < len(self._projects) and self._projects[i] == project:
            return self.dists[i]
        return None

    def _by_wheel_name(self, filename: str) -> Dist | None:
        # A wheel's name starts with its project, `-` and `.` written `_` (the wheel spec).
        dist = self.dist(wheel_project(filename))
        return dist if dist is not None and dist.filename == filename else None

    def _file_dist(self, filename: str) -> Dist | None:
        if filename.endswith(METADATA_SUFFIX):
            wheel = filename[: -len(METADATA_SUFFIX)]
        else:
            wheel = filename
        if self._by_filename is not None:
            return self._by_filename.get(wheel)
        return self._by_wheel_name(wheel)

    def digest(self, filename: str) -> tuple[str, int] | None:
        """The sha256 and size the manifest records for one of its files."""
        dist = self._file_dist(filename)
        if dist is None:
            return None
        if filename == dist.filename:
            return dist.sha256, dist.size
        if filename == dist.metadata_filename:
            return dist.metadata_sha256, dist.metadata_size
        return None

    @property
    def projects(self) -> tuple[str, ...]:
        return self._projects

    @property
    def filenames(self) -> frozenset[str]:
        """Every wheel and .metadata file the manifest lists (computed per call)."""
        return frozenset(n for d in self.dists for n in (d.filename, d.metadata_filename))

    @property
    def files(self) -> Mapping[str, tuple[str, int]]:
        """Every wheel and .metadata file the manifest lists: filename -> (sha256, size) (computed
        per call: iterate `dists` where a loop will do)."""
        files = {d.filename: (d.sha256, d.size) for d in self.dists}
        files.update({d.metadata_filename: (d.metadata_sha256, d.metadata_size) for d in self.dists})
        return files

    def size(self, manifest_bytes: int) -> int:
        """The export's size as every store counts it (docs/design.md, "An export's size"): its
        manifest plus the wheel and .metadata files it lists. The static `simple/` tree is not
        counted: it is derived from the manifest, and an object store does not keep it."""
        return manifest_bytes + sum(d.size + d.metadata_size for d in self.dists)


_DIST_FIELDS = tuple(f.name for f in fields(Dist) if f.compare)


class DistTable:
    """Dists shared by content across exports: an entry that parses to the same Dist as one already
    held is that object, and its checks (PEP 440, PEP 508) run once. With content versions an
    unchanged dist has the same entry in every export, so a thousand exports of one monorepo hold
    each distinct dist once. Entries no export holds any more are dropped (weak references)."""

    def __init__(self) -> None:
        self._by_entry: weakref.WeakValueDictionary[tuple[int, str, str], Dist] = weakref.WeakValueDictionary()
        # The same dist reached from another text (a manifest with fields this relay does not know,
        # the store's catalog, which writes only those it knows) is still one object.
        self._by_value: weakref.WeakValueDictionary[tuple[object, ...], Dist] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()  # a store parses on a thread of its own too
        # Entries parsed lately, by where they point (their wheel), with their JSON values and the
        # Dist they made: an equal entry in the next manifest is that Dist without its canonical text
        # made again (a third of a first start's parse; see `entry`). Emptied by `forget_recent`.
        self._recent: dict[tuple[object, ...], tuple[dict[str, Any], tuple[object, ...], Dist]] = {}

    def __len__(self) -> int:
        return len(self._by_entry)

    def entry(self, data: Any, export_version: str, fmt: int, where: str) -> Dist:
        """The Dist of one parsed manifest entry (`dist` of its canonical text). An entry equal to
        one parsed lately, the same keys in the same order and values equal and of the same types
        (JSON's `1`, `1.0` and `true` compare equal in Python, and only one of them is a valid
        size), is that entry's Dist: it would pass the same checks and make the same text."""
        try:
            key: tuple[object, ...] | None = (
                fmt, export_version if fmt == FORMAT else "", data["filename"], data["sha256"]
            )
            recent = self._recent.get(key)  # type: ignore[arg-type]
        except (TypeError, KeyError):  # not an object, no such fields, or unhashable values
            key = recent = None
        if recent is not None and recent[0] == data and recent[1] == _shape(data):
            return recent[2]
        found = self.dist(entry_text(data), data, export_version, fmt, where)
        if key is not None:
            with self._lock:
                if len(self._recent) >= RECENT_ENTRIES:
                    self._recent.clear()
                self._recent[key] = (data, _shape(data), found)
        return found

    def forget_recent(self) -> None:
        """Drop the entries kept for `entry` (a store calls this after a scan: the raw JSON of a
        few thousand entries need not stay in memory until the next new manifest)."""
        with self._lock:
            self._recent = {}

    def dist(self, entry: str, data: Any, export_version: str, fmt: int, where: str) -> Dist:
        """The Dist of one manifest entry; `entry` is its canonical text (`entry_text`), `data` its
        parsed JSON (None to parse `entry`)."""
        # Format 1 checks a dist's version against the export's: the export's version is part of the key.
        key = (fmt, export_version if fmt == FORMAT else "", entry)
        with self._lock:
            found = self._by_entry.get(key)
        if found is None:
            parsed = _parse_dist(json.loads(entry) if data is None else data, export_version, fmt, where)
            value = tuple(getattr(parsed, name) for name in _DIST_FIELDS)
            with self._lock:
                found = self._by_value.setdefault(value, parsed)
                self._by_entry[key] = found
        return found


# Entries `DistTable.entry` keeps at most (a few exports' worth of a 10,000-dist monorepo).
RECENT_ENTRIES = 32768


def _shape(data: dict[str, Any]) -> tuple[object, ...]:
    """An entry's keys in order, then its values' types: equal entries of one shape are the same JSON."""
    return (*data, *map(type, data.values()))


# json.dumps with these arguments makes an encoder per call: a third of the time of a call, which a
# start without a catalog makes once per entry of every manifest (1.5 million at 1,500 exports).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def entry_text(data: Any) -> str:
    """The canonical text of one manifest entry (a dist's JSON object): equal entries, equal text."""
    return _CANONICAL.encode(data)


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


# The same requirement lines and Requires-Python recur across dists and exports: checked once each.
@functools.lru_cache(maxsize=16384)
def _requirement_problem(requirement: str) -> str | None:
    try:
        Requirement(requirement)
    except InvalidRequirement as e:
        return str(e)
    return None


@functools.lru_cache(maxsize=1024)
def _valid_specifier(specifier: str) -> bool:
    try:
        SpecifierSet(specifier)
    except InvalidSpecifier:
        return False
    return True


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
        problem = _requirement_problem(requirement)
        if problem is not None:
            raise ContractError(f"{where}: bad requirement {requirement!r}: {problem}")
    requires_python = data.get("requires_python")
    if requires_python is not None:
        if not isinstance(requires_python, str):
            raise ContractError(f"{where}: requires_python must be a string or null")
        if not _valid_specifier(requires_python):
            raise ContractError(f"{where}: bad requires_python {requires_python!r}")
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


def parse_manifest(raw: bytes, where: str, table: DistTable | None = None) -> Export:
    """Parse and validate manifest bytes; `where` names the file in error messages. With `table`,
    dists are shared with the other exports parsed through it."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ContractError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ContractError(f"{where}: the manifest must be a JSON object")
    raw_dists = _get(data, "dists", list, where)
    header = {k: v for k, v in data.items() if k != "dists"}
    fmt = header.get("format")
    if fmt not in FORMATS or isinstance(fmt, bool):
        raise ContractError(
            f"{where}: format {fmt!r} is not supported (this relay reads formats {', '.join(map(str, FORMATS))})"
        )
    version = _get(header, "version", str, where)
    if table is None:
        dists = [_parse_dist(d, version, fmt, where) for d in raw_dists]
    else:
        dists = [table.entry(d, version, fmt, where) for d in raw_dists]
    return export_from_parts(header, dists, where)


def export_from_parts(header: Mapping[str, Any], dists: Sequence[Dist], where: str) -> Export:
    """Validate a manifest's top-level fields (all but `dists`) and make its Export of parsed dists:
    what `parse_manifest` does after the dists, and what an index of manifests uses to rebuild one."""
    fmt = header.get("format")
    if fmt not in FORMATS or isinstance(fmt, bool):
        raise ContractError(
            f"{where}: format {fmt!r} is not supported (this relay reads formats {', '.join(map(str, FORMATS))})"
        )
    sha = _get(header, "sha", str, where)
    if not _SHA.fullmatch(sha):
        raise ContractError(f"{where}: sha {sha!r} is not 40 lowercase hex digits")
    version = _get(header, "version", str, where)
    try:
        Version(version)
    except InvalidVersion:
        raise ContractError(f"{where}: version {version!r} is not a PEP 440 version") from None
    projects = {d.project for d in dists}
    if len(projects) != len(dists):
        raise ContractError(f"{where}: a project is listed twice")
    return Export(
        sha=sha,
        version=version,
        count=_get(header, "count", int, where),
        namespace=_get(header, "namespace", str, where),
        dirty=_get(header, "dirty", bool, where),
        branches=_str_list(header, "branches", where),
        tags=_str_list(header, "tags", where),
        commit_time=_get(header, "commit_time", str, where),
        dists=tuple(dists),  # Export sorts them by project
        format=fmt,
    )


def read_export(directory: Path, table: DistTable | None = None) -> Export:
    """Read `<directory>/manifest.json` and check it belongs to that directory."""
    manifest = directory / MANIFEST
    try:
        raw = manifest.read_bytes()
    except OSError as e:
        raise ContractError(f"{manifest}: cannot be read ({e.strerror})") from None
    export = parse_manifest(raw, str(manifest), table)
    if export.key != directory.name:
        raise ContractError(
            f"{manifest}: names commit {export.key!r} but lies in directory {directory.name!r}"
        )
    return export


# How much of a manifest `read_header` reads: the top-level fields come first in what the exporters
# of this repository write, a few hundred bytes.
HEADER_BYTES = 64 * 1024
HEADER_FIRST_BYTES = 4096  # read first: enough unless a commit is on hundreds of branches or tags
# The fields that tell a ref's exports apart and order them (`recency`, `Export.branches`, ...).
HEADER_ORDER_FIELDS = ("count", "commit_time", "dirty", "branches", "tags")
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def read_header(directory: Path) -> dict[str, Any] | None:
    """The manifest's top-level fields that come before `dists`, read from its first bytes (at most
    HEADER_BYTES) without parsing the dists: what a store needs to tell which exports are branch tips
    before it reads them whole. None when that cannot be told so: the file is missing or not JSON
    there, or HEADER_ORDER_FIELDS do not all come before `dists` (a writer of the contract may order
    its keys as it likes). Nothing is validated: `read_export` does that."""
    try:
        with open(directory / MANIFEST, "rb") as f:
            head = f.read(HEADER_FIRST_BYTES)
            if len(head) == HEADER_FIRST_BYTES:
                found = parse_header(head)
                if found is not None:
                    return found
                head += f.read(HEADER_BYTES - len(head))
    except OSError:
        return None
    return parse_header(head)


def parse_header(head: bytes) -> dict[str, Any] | None:
    """`read_header` of a manifest's first bytes (as an object store's ranged read returns them)."""
    # A character cut at the end of the read is dropped; the fields before `dists` come before it.
    text = head.decode("utf-8", "ignore")
    header: dict[str, Any] = {}
    space = _SPACE.match
    try:
        i = space(text).end()  # type: ignore[union-attr]
        if text[i] != "{":
            return None
        i += 1
        while True:
            key, i = _DECODER.raw_decode(text, space(text, i).end())  # type: ignore[union-attr]
            i = space(text, i).end()  # type: ignore[union-attr]
            if not isinstance(key, str) or text[i] != ":":
                return None
            if key == "dists":
                return header if all(k in header for k in HEADER_ORDER_FIELDS) else None
            header[key], i = _DECODER.raw_decode(text, space(text, i + 1).end())  # type: ignore[union-attr]
            i = space(text, i).end()  # type: ignore[union-attr]
            if text[i] != ",":
                return None  # the object ends with no `dists`: the parse says so
            i += 1
    except (ValueError, IndexError):
        return None


def recency(export: Export) -> tuple[int, str]:
    """How exports of one line are ordered: by first-parent count, then commit time."""
    return export.count, export.commit_time


def newest_first(exports: Iterable[Export]) -> list[Export]:
    """The exports, newest first (by `recency`): a ref's list of exports, its tip first."""
    return sorted(exports, key=recency, reverse=True)


def written_export_dir(output_dir: Path, sha: str) -> Path:
    """Where an export command given `output_dir` wrote the export of `sha`: `<output_dir>/<sha>/`
    as `pants export-dists` writes, or `output_dir` itself."""
    nested = output_dir / sha
    return nested if (nested / MANIFEST).is_file() else output_dir


def manifest_header(export: Export) -> dict[str, Any]:
    """The manifest's top-level fields but `dists`, as manifest.json has them."""
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
    }
    if export.format == CONTENT_FORMAT:
        data["version_scheme"] = "content"
    return data


def manifest_json(export: Export) -> str:
    """The manifest text for an export (what a writer of the contract puts in manifest.json)."""
    header = manifest_header(export)
    scheme = header.pop("version_scheme", None)
    data = {**header, "dists": [dist_entry(d, export.format) for d in export.dists]}
    if scheme is not None:
        data["version_scheme"] = scheme
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def dist_entry(d: Dist, fmt: int) -> dict[str, Any]:
    """One dist's manifest entry (its JSON object) in format `fmt`."""
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
    if fmt == CONTENT_FORMAT:
        entry.update(origin=d.origin, fingerprint=d.fingerprint, dirty=d.dirty)
    return entry

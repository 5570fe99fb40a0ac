"""The simple repository API pages: one model, rendered as PEP 503 HTML or PEP 691 JSON."""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable, Iterable, Sequence, Union
from urllib.parse import quote

from packaging.version import Version

from relay.contract import Export

TEXT_HTML = "text/html"
V1_HTML = "application/vnd.pypi.simple.v1+html"
V1_JSON = "application/vnd.pypi.simple.v1+json"
# PEP 629 / PEP 691; 1.1 is PEP 700 (`versions` and `size` in JSON).
API_VERSION = "1.1"
# The server's order of preference when the client rates several the same (as Warehouse does).
OFFERS = (TEXT_HTML, V1_HTML, V1_JSON)
_ALIASES = {
    "application/vnd.pypi.simple.latest+html": V1_HTML,
    "application/vnd.pypi.simple.latest+json": V1_JSON,
}
CONTENT_TYPES = {
    TEXT_HTML: "text/html; charset=utf-8",
    V1_HTML: V1_HTML + "; charset=utf-8",
    V1_JSON: V1_JSON,
}


@dataclass(frozen=True)
class FileLink:
    filename: str
    url: str
    sha256: str
    size: int
    requires_python: str | None
    metadata_sha256: str


@dataclass(frozen=True)
class ProjectPage:
    name: str
    files: tuple[FileLink, ...]
    versions: tuple[str, ...]


@dataclass(frozen=True)
class RootPage:
    projects: tuple[str, ...]


Page = Union[ProjectPage, RootPage]


@dataclass(frozen=True)
class Rendered:
    """A page's bytes in one media type, with its gzip form and ETags, computed once."""

    media_type: str
    body: bytes
    gzipped: bytes
    etag: str

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.media_type]

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gz"'


def file_url(base: str, key: str, filename: str) -> str:
    """The URL of a file of export `key`, relative to a page whose way back to the root is `base`."""
    return f"{base}{quote(key, safe='.')}/{quote(filename, safe='')}"


def project_page(
    project: str, exports: Sequence[Export], link: Callable[[str, str], str]
) -> ProjectPage | None:
    """The page of one project over the given exports (one for a sha, a first-parent line for a branch).

    `link(export key, filename)` gives each file's URL. A file many exports share (a dist whose
    content did not change, format 2) is listed once, linked under the oldest export that has
    it, so its URL stays the same while the branch moves on.
    """
    links: list[tuple[Version, str, FileLink]] = []
    seen: set[str] = set()
    for export in reversed(exports):
        dist = export.dist(project)
        if dist is None or dist.filename in seen:
            continue
        seen.add(dist.filename)
        file = FileLink(
            filename=dist.filename,
            url=link(export.key, dist.filename),
            sha256=dist.sha256,
            size=dist.size,
            requires_python=dist.requires_python,
            metadata_sha256=dist.metadata_sha256,
        )
        links.append((Version(dist.version), dist.version, file))
    if not links:
        return None
    links.sort(key=lambda entry: (entry[0], entry[2].filename))
    return ProjectPage(
        name=project,
        files=tuple(file for _, _, file in links),
        versions=tuple(dict.fromkeys(version for _, version, _ in links)),
    )


def root_page(exports: Iterable[Export]) -> RootPage:
    return RootPage(projects=tuple(sorted({p for e in exports for p in e.projects})))


def _html_project(page: ProjectPage) -> str:
    name = html.escape(page.name)
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        f"    <title>Links for {name}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>Links for {name}</h1>",
    ]
    for f in page.files:
        attributes = [f'href="{html.escape(f.url)}#sha256={f.sha256}"']
        if f.requires_python is not None:
            attributes.append(f'data-requires-python="{html.escape(f.requires_python)}"')
        # Both spellings, as PyPI does: PEP 714's name for new clients, PEP 658's for older pips.
        attributes.append(f'data-dist-info-metadata="sha256={f.metadata_sha256}"')
        attributes.append(f'data-core-metadata="sha256={f.metadata_sha256}"')
        lines.append(f"    <a {' '.join(attributes)}>{html.escape(f.filename)}</a><br/>")
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines)


def _html_root(page: RootPage) -> str:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        "    <title>Simple index</title>",
        "  </head>",
        "  <body>",
    ]
    for project in page.projects:
        lines.append(f'    <a href="{quote(project)}/">{html.escape(project)}</a><br/>')
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines)


def _json_project(page: ProjectPage) -> dict[str, object]:
    files = []
    for f in page.files:
        entry: dict[str, object] = {
            "filename": f.filename,
            "url": f.url,
            "hashes": {"sha256": f.sha256},
            "requires-python": f.requires_python,
            # Only PEP 714's key: pip 22.3-23.1 crash on a JSON `dist-info-metadata`.
            "core-metadata": {"sha256": f.metadata_sha256},
            "size": f.size,
            "yanked": False,
        }
        files.append(entry)
    return {"meta": {"api-version": API_VERSION}, "name": page.name, "files": files, "versions": list(page.versions)}


def _json_root(page: RootPage) -> dict[str, object]:
    return {"meta": {"api-version": API_VERSION}, "projects": [{"name": p} for p in page.projects]}


def render(page: Page, media_type: str) -> Rendered:
    if media_type == V1_JSON:
        data = _json_project(page) if isinstance(page, ProjectPage) else _json_root(page)
        body = json.dumps(data, separators=(",", ":")).encode()
    else:
        text = _html_project(page) if isinstance(page, ProjectPage) else _html_root(page)
        body = text.encode()
    digest = hashlib.sha256(media_type.encode() + b"\0" + body).hexdigest()[:32]
    return Rendered(
        media_type=media_type,
        body=body,
        gzipped=gzip.compress(body, compresslevel=6, mtime=0),
        etag=f'"{digest}"',
    )


def _parse_accept(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        q = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        ranges.append((_ALIASES.get(media, media), q))
    return ranges


def _quality(offer: str, ranges: list[tuple[str, float]]) -> float | None:
    """The q of the most specific range that matches the offer (exact, then `type/*`, then `*/*`)."""
    kind = offer.split("/")[0]
    best: tuple[int, float] | None = None
    for media, q in ranges:
        if media == offer:
            specificity = 2
        elif media == kind + "/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, q)
    return None if best is None else best[1]


@functools.lru_cache(maxsize=1024)
def negotiate(accept: str | None) -> str | None:
    """PEP 691 content negotiation: the media type to answer with, or None for 406.

    Remembered per header value: a client sends the same Accept on every request, and parsing it
    took 3-7 us of each.
    """
    if not accept or not accept.strip():
        return TEXT_HTML
    ranges = _parse_accept(accept)
    chosen: tuple[float, str] | None = None
    for offer in OFFERS:
        q = _quality(offer, ranges)
        if q is not None and q > 0 and (chosen is None or q > chosen[0]):
            chosen = (q, offer)
    return None if chosen is None else chosen[1]


class PageCache:
    """Rendered pages, kept while the exports they were rendered from stay the same.

    An export directory may be replaced under its name (a dirty re-export, a commit re-exported with
    more dists): its pages must then follow the new manifest, so an entry remembers its exports and
    is used only for those same (or equal) exports.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._entries: OrderedDict[Hashable, tuple[tuple[Export, ...], Rendered | None]] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(
        self,
        key: Hashable,
        build: Callable[[], Page | None],
        media_type: str,
        sources: tuple[Export, ...] = (),
    ) -> Rendered | None:
        full_key = (key, media_type)
        with self._lock:
            entry = self._entries.get(full_key)
            # The store hands out the same Export objects while a manifest is unchanged, so this is
            # an identity check per export in the common case.
            if entry is not None and entry[0] == sources:
                self._entries.move_to_end(full_key)
                return entry[1]
        page = build()
        rendered = None if page is None else render(page, media_type)
        with self._lock:
            self._entries[full_key] = (sources, rendered)
            self._entries.move_to_end(full_key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return rendered

"""The pages for people rendered from their models with jinja2 templates (autoescaped), and kept."""

from __future__ import annotations

from typing import Hashable, Sequence
from urllib.parse import quote

import jinja2
from cachetools import LRUCache

from relay.web.page_models import DistPage, HomePage, RefPage, RefRow

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("relay.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def size_text(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"


def age_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def ref_url(ref: str, base: str) -> str:
    """A ref's page: `base` (the way up to the relay's root) and the ref, quoted for a URL path."""
    return f"{base}{quote(ref, safe='/')}/"


_ENV.filters["size"] = size_text
_ENV.filters["age"] = age_text
_ENV.filters["ref_url"] = ref_url


def when(text: str | None) -> str:
    """An ISO 8601 time as `2026-01-02 03:04` (its offset kept unless UTC); anything else as it is."""
    if not text:
        return ""
    if len(text) >= 16 and text[10] == "T":
        offset = text[19:] if len(text) > 19 else ""
        return text[:10] + " " + text[11:16] + ("" if offset in ("", "Z", "+00:00") else " " + offset)
    return text


_ENV.filters["when"] = when


def ref_html(page: RefPage, base: str) -> str:
    return _ENV.get_template("ref.html").render(page=page, base=base)


def dist_html(page: DistPage, base: str) -> str:
    return _ENV.get_template("dist.html").render(page=page, base=base)


def home_html(page: HomePage) -> str:
    return _ENV.get_template("home.html").render(page=page, base="")


def not_found_html(ref: str, message: str, rows: Sequence[RefRow], base: str) -> str:
    """An unknown ref: the refs this relay serves instead."""
    return _ENV.get_template("not_found.html").render(ref=ref, message=message, rows=rows, base=base)


def error_html(ref: str, message: str, base: str, title: str | None = None) -> str:
    """A ref that exists but cannot be shown now (a failed build, a git error), or a dist it lacks."""
    return _ENV.get_template("error.html").render(ref=ref, message=message, base=base, title=title or ref)


# Rendered pages kept, in bytes (a ref's page of 1,000 dists is about 0.5 MB).
RENDERED_BYTES = 32 * 1024 * 1024


class RenderedPages:
    """Rendered pages for people by everything they were rendered from, least recently used out.

    A key must name all a page shows: the store's generation (it changes with any export), the ref's
    exports and the commit being built, the query, the URLs' base and whether credentials are asked.
    A page shown with something missing (a wheel or git that could not be read now) is not kept.
    """

    def __init__(self, max_bytes: int = RENDERED_BYTES) -> None:
        self.max_bytes = max_bytes
        self._pages: LRUCache[Hashable, bytes] = LRUCache(maxsize=max_bytes, getsizeof=len)

    def get(self, key: Hashable) -> bytes | None:
        return self._pages.get(key)

    def put(self, key: Hashable, body: bytes) -> None:
        if len(body) <= self.max_bytes // 8:
            self._pages[key] = body

"""The pages for people rendered from their models with jinja2 templates (autoescaped), and kept."""

from __future__ import annotations

from typing import Hashable

import jinja2
from cachetools import LRUCache

from relay.web.page_models import DistPage, RefPage
from relay.web.pages import size_text

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("relay.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_ENV.filters["size"] = size_text


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

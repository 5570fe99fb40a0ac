"""The pages for people rendered from their models with jinja2 templates (autoescaped)."""

from __future__ import annotations

import jinja2

from relay.page_models import DistPage, RefPage
from relay.pages import size_text

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("relay", "templates"),
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


def ref_html(page: RefPage, base: str, auth: bool) -> str:
    return _ENV.get_template("ref.html").render(page=page, base=base, auth=auth)


def dist_html(page: DistPage, base: str, auth: bool) -> str:
    return _ENV.get_template("dist.html").render(page=page, base=base, auth=auth)

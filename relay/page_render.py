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


def ref_html(page: RefPage, base: str, auth: bool) -> str:
    return _ENV.get_template("ref.html").render(page=page, base=base, auth=auth)


def dist_html(page: DistPage, base: str, auth: bool) -> str:
    return _ENV.get_template("dist.html").render(page=page, base=base, auth=auth)

"""The pages for people: `/` (refs, exports, builds) and what a ref that cannot be shown answers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from aiohttp import web

from relay.building.log import BuildLog
from relay.contract import Export, newest_first
from relay.index.refs import RefError, Refs
from relay.storage.store import Store
from relay.web import page_models, page_render
from relay.web.page_models import HomePage, RefRow

CONTENT_TYPE = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Context:
    """What every page needs from the application, read once per request."""

    store: Store
    refs: Refs
    default_ref: str
    builds: BuildLog | None
    auth: bool


# Refs.


def _newest(exports: Iterable[Export]) -> Export | None:
    ordered = newest_first(exports)
    return ordered[0] if ordered else None


async def ref_rows(context: Context) -> list[RefRow]:
    """The branches and tags the relay serves: from git with --repo (the commits resolution serves,
    read by Refs, the one reader of the repository's refs), else from the manifests."""
    stored = {key: s.export for key, s in context.store.exports().items()}
    clean = [x for x in stored.values() if not x.dirty]
    rows: list[RefRow] = []
    git = context.refs.git
    if git is not None:
        for ref in await context.refs.listing():
            rows.append(RefRow(name=ref.name, kind=ref.kind, sha=ref.sha, export=stored.get(ref.sha)))
    else:
        branches = sorted({b for x in clean for b in x.branches})
        tags = sorted({t for x in clean for t in x.tags})
        for name in branches:
            tip = _newest(x for x in clean if name in x.branches)
            rows.append(RefRow(name=name, kind="branch", sha=tip.sha if tip else None, export=tip))
        for name in tags:
            tip = _newest(x for x in clean if name in x.tags)
            rows.append(RefRow(name=name, kind="tag", sha=tip.sha if tip else None, export=tip))
    if not any(r.name == context.default_ref for r in rows):
        rows.insert(0, RefRow(name=context.default_ref, kind="default", sha=None, export=None))
    rows.sort(key=lambda r: (r.name != context.default_ref, r.kind != "branch", r.name))
    return rows


# Pages.


def home_page_model(context: Context, rows: Sequence[RefRow]) -> HomePage:
    return page_models.home_page_model(
        context.default_ref, rows, context.builds, list(context.store.exports().values()), time.time()
    )


def respond(text: str | bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=text if isinstance(text, bytes) else text.encode(),
        headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store", "Vary": "Authorization", **(headers or {})},
    )


async def not_found(context: Context, ref: str, error: RefError, base: str) -> web.Response:
    if error.status != 404:
        return respond(page_render.error_html(ref, error.message, base), status=error.status)
    rows = await ref_rows(context)
    return respond(page_render.not_found_html(ref, error.message, rows, base), status=404)

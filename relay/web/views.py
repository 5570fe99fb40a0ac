"""What the handlers share: the ref a request names, media types, cache headers, conditional requests."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.helpers import ETAG_ANY
from packaging.utils import canonicalize_name

from relay.index import render
from relay.index.constraints import url_requirements
from relay.index.history import parse_requirement
from relay.index.refs import RefError, View
from relay.web import pages
from relay.web.forwarded import may_carry_credentials, public_base_url
from relay.web.install_lines import Where, install_lines
from relay.web.keys import AUTH, BUILDING_HEADER, CACHE_POLICY, MATERIALIZER, REFS, SETTINGS, STORE

# PEP 508 names; anything else in the project position is rejected before any lookup.
PROJECT_NAME = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")


async def resolve_view(request: web.Request) -> View:
    ref = request.match_info.get("ref") or request.app[SETTINGS].default_ref
    view = await request.app[REFS].resolve(ref)
    request.app[STORE].touch(view.tip.key)
    return view


def base_path(request: web.Request, levels_below_ref: int) -> str:
    """The relative way from a page back to the root (links stay right behind a path prefix)."""
    ref = request.match_info.get("ref")
    depth = (ref.count("/") + 1 if ref else 0) + levels_below_ref
    return "../" * depth


def cache_control(request: web.Request, view: View) -> str:
    policy = request.app[CACHE_POLICY]
    if view.building is not None:
        return policy.building
    return policy.immutable if view.immutable else policy.branch


def etag_matches(request: web.Request, *etags: str) -> bool:
    """Whether If-None-Match names one of `etags` (quoted), by weak comparison as RFC 9110 says."""
    offered = request.if_none_match
    if not offered:
        return False
    values = {tag.value for tag in offered}
    return ETAG_ANY in values or any(etag.strip('"') in values for etag in etags)


def negotiated_media_type(request: web.Request) -> str:
    # ?format= overrides Accept, as on PyPI, for browsers and curl. A `+` typed unencoded reads as a
    # space in a query; no media type holds a space.
    fmt = request.query.get("format")
    media_type = render.negotiate(fmt.replace(" ", "+") if fmt else request.headers.get("Accept"))
    if media_type is None:
        raise RefError(406, f"none of the requested types is served; use one of: {', '.join(render.OFFERS)}")
    return media_type


def page_response(request: web.Request, rendered: render.Rendered, view: View) -> web.Response:
    gz = "gzip" in request.headers.get("Accept-Encoding", "").lower()
    etag = rendered.gzip_etag if gz else rendered.etag
    headers = {
        "ETag": etag,
        "Cache-Control": cache_control(request, view),
        "Vary": "Accept, Accept-Encoding, Authorization",
        "X-Relay-Commit": view.sha,
    }
    if view.building is not None:
        headers[BUILDING_HEADER] = view.building
    if etag_matches(request, rendered.etag, rendered.gzip_etag):
        return web.Response(status=304, headers=headers)
    if gz:
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = rendered.content_type
    return web.Response(body=rendered.gzipped if gz else rendered.body, headers=headers)


def reserved(request: web.Request, project: str) -> bool:
    """A name the monorepo owns: never sent upstream, so no public package can shadow it."""
    exports = [s.export for s in request.app[STORE].exports().values()]
    namespaces = {canonicalize_name(n) for n in request.app[SETTINGS].namespaces}
    namespaces |= {canonicalize_name(e.namespace) for e in exports}
    if any(project == n or project.startswith(n + "-") for n in namespaces):
        return True
    return any(e.dist(project) is not None for e in exports)


def url_requirement_hint(request: web.Request, view: View, project: str) -> str:
    """For a name the ref's dists require by URL: where it comes from, and the line that installs it."""
    tip = view.tip
    lines = [r for r in url_requirements(tip) if parse_requirement(r).project == project]
    if not lines:
        return ""
    dist = next((d for d in tip.dists if any(parse_requirement(r).project == project for r in d.requires_dist)), None)
    names = (dist.name,) if dist is not None else ("NAME",)
    line = install_lines(where_of(request), view.ref, view.sha, names, url_requirements=True, pip="pip").install
    return (
        f"; the dists of {view.ref!r} require it by URL ({lines[0]}), which uv installs only as a direct "
        f"requirement or a constraint: install with this ref's constraints file, e.g. {line.text}"
    )


def page_context(request: web.Request) -> pages.Context:
    materializer = request.app.get(MATERIALIZER)
    return pages.Context(
        store=request.app[STORE],
        refs=request.app[REFS],
        default_ref=request.app[SETTINGS].default_ref,
        builds=materializer.log if materializer is not None else None,
        auth=AUTH in request.app,
    )


def where_of(request: web.Request) -> Where:
    """How a person's installer reaches this relay: the base of every URL a page tells them to copy."""
    base = public_base_url(request)
    auth = AUTH in request.app
    return Where(
        base=str(base),
        auth=auth,
        credentials=auth and may_carry_credentials(base),
        upstream=request.app[SETTINGS].upstream is not None,
    )

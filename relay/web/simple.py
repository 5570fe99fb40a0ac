"""The simple API (PEP 503 / PEP 691) and the plain answers beside it: health, readiness, constraints."""

from __future__ import annotations

import hashlib

from aiohttp import web
from packaging.utils import canonicalize_name

from relay.index import render
from relay.index.constraints import constraints_text
from relay.index.refs import RefError
from relay.web.keys import AUTH, MATERIALIZER, PAGES, SETTINGS, STORE
from relay.web.views import PROJECT_NAME, base_path, cache_control, etag_matches, negotiated_media_type, page_response, reserved, resolve_view, url_requirement_hint

async def health(request: web.Request) -> web.Response:
    if AUTH in request.app:
        # Open to anyone: with credentials on, say nothing about the store or what is being built.
        return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})
    materializer = request.app.get(MATERIALIZER)
    builds = materializer.status() if materializer else []
    body: dict[str, object] = {
        "status": "ok",
        "exports": len(request.app[STORE].exports()),
        # Found but not listed yet: a first start over a store without a catalog reads them after the tips.
        "reading": request.app[STORE].reading,
        "building": [b["sha"] for b in builds],
        "builds": builds,
    }
    if materializer is not None:
        body["builders"] = materializer.builder_status()
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def ready(request: web.Request) -> web.Response:
    """200 when the store can serve (and, in pull mode, the relay can build), else 503 with why.

    Liveness (/-/health) never looks at the store: a replica whose store is down is alive but should
    get no traffic. Both read only what the relay already knows: no request to the store per probe.
    """
    store = request.app[STORE]
    materializer = request.app.get(MATERIALIZER)
    problems = {"store": store.unavailable()}
    if materializer is not None:
        problems["builder"] = materializer.unavailable()
    failing = {part: reason for part, reason in problems.items() if reason is not None}
    status = 503 if failing else 200
    body: dict[str, object] = {"status": "not ready" if failing else "ready"}
    if AUTH not in request.app:
        # With credentials on, say nothing about the store to a client without them.
        body.update({part: reason or "ok" for part, reason in problems.items()})
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


async def root_index(request: web.Request) -> web.Response:
    media_type = negotiated_media_type(request)
    view = await resolve_view(request)
    rendered = request.app[PAGES].get(
        ("root", view.keys), lambda: render.root_page(view.exports), media_type, view.exports
    )
    assert rendered is not None
    return page_response(request, rendered, view)


async def project_index(request: web.Request) -> web.StreamResponse:
    name = request.match_info["project"]
    if not PROJECT_NAME.fullmatch(name):
        raise RefError(400, f"{name!r} is not a valid project name (PEP 508)")
    project = canonicalize_name(name)
    if name != project or not request.path.endswith("/"):
        # Relative, so the redirect also works behind a path prefix.
        location = ("../" if request.path.endswith("/") else "") + project + "/"
        if request.query_string:
            location += "?" + request.query_string
        raise web.HTTPMovedPermanently(location)
    media_type = negotiated_media_type(request)
    view = await resolve_view(request)
    base = base_path(request, 2)
    rendered = request.app[PAGES].get(
        ("project", view.keys, project, base),
        lambda: render.project_page(project, view.exports, lambda key, f: render.file_url(base, key, f)),
        media_type,
        view.exports,
    )
    if rendered is not None:
        return page_response(request, rendered, view)
    if reserved(request, project):
        raise RefError(404, f"{project!r} has no dist at {view.ref!r} ({view.sha[:12]})")
    upstream = request.app[SETTINGS].upstream
    if upstream is None:
        message = f"{project!r} is not a project of this relay and no --upstream is configured"
        raise RefError(404, message + url_requirement_hint(request, view, project))
    # 302, not 301: the name may become a monorepo project later.
    raise web.HTTPFound(f"{upstream.rstrip('/')}/{project}/", headers={"Cache-Control": "max-age=300"})


async def constraints(request: web.Request) -> web.Response:
    view = await resolve_view(request)
    tip = view.tip
    body = constraints_text(tip, view.ref).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": cache_control(request, view), "X-Relay-Commit": tip.sha}
    if etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="text/plain", charset="utf-8", headers=headers)


async def add_slash(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(request.path.rsplit("/", 1)[-1] + "/")

"""The pages for people: a view picks the model and renders it (relay/web/pages.py, page_render.py)."""

from __future__ import annotations

from aiohttp import web
from packaging.utils import canonicalize_name

from relay.index.refs import RefError
from relay.index.wheel_contents import UNKNOWN
from relay.web import page_render, pages
from relay.web.keys import COMMITS, CONTENTS, HISTORIES, RENDERED
from relay.web.page_models import dependents_of, dist_page_model, ref_page_model
from relay.web.views import PROJECT_NAME, base_path, page_context, resolve_view, url_requirement_hint, where_of

async def home(request: web.Request) -> web.Response:
    context = page_context(request)
    return pages.respond(page_render.home_html(pages.home_page_model(context, await pages.ref_rows(context))))


async def ref_home(request: web.Request) -> web.Response:
    context = page_context(request)
    ref, base = request.match_info["ref"], base_path(request, 0)
    try:
        view = await resolve_view(request)
    except RefError as error:
        return await pages.not_found(context, ref, error, base)
    where, query = where_of(request), request.query.get("q", "")
    key = ("ref", context.store.generation, view.ref, view.keys, view.building, query, base, where)
    body = request.app[RENDERED].get(key)
    if body is None:
        tip = view.tip
        contents = await request.app[CONTENTS].of_all(tip, tip.dists)
        body = page_render.ref_html(ref_page_model(view, where, query, contents), base).encode()
        if all(c is not UNKNOWN for c in contents.values()):
            request.app[RENDERED].put(key, body)
    return pages.respond(body)


async def dist_home(request: web.Request) -> web.Response:
    """A dist's page at a ref: `/<ref>/-/<project>/`."""
    context = page_context(request)
    ref, name, base = request.match_info["ref"], request.match_info["project"], base_path(request, 2)
    project = canonicalize_name(name) if PROJECT_NAME.fullmatch(name) else None
    if project is None:
        raise RefError(400, f"{name!r} is not a valid project name (PEP 508)")
    if name != project:
        raise web.HTTPMovedPermanently(f"../{project}/")
    try:
        view = await resolve_view(request)
    except RefError as error:
        return await pages.not_found(context, ref, error, base)
    tip = view.tip
    dist = tip.dist(project)
    if dist is None:
        message = f"{view.ref} ({view.sha[:12]}) has no dist {project!r}" + url_requirement_hint(request, view, project)
        return pages.respond(page_render.error_html(ref, message, base, title=f"No dist {project} here"), status=404)
    where = where_of(request)
    key = ("dist", context.store.generation, view.ref, view.keys, view.building, project, base, where)
    body = request.app[RENDERED].get(key)
    if body is not None:
        return pages.respond(body)
    history = await request.app[HISTORIES].exports(view)
    wheels = request.app[CONTENTS]
    contents = await wheels.of(tip, dist)
    dependents = await wheels.of_all(tip, dependents_of(tip, project))
    origins = {d.origin or x.sha for x in history for d in (x.dist(project),) if d is not None}
    commits = await request.app[COMMITS].read(origins)
    page = dist_page_model(
        view,
        dist,
        where,
        base=base,
        contents=None if contents is UNKNOWN else contents,
        dependents_contents=dependents,
        history=history,
        commits=commits,
    )
    body = page_render.dist_html(page, base).encode()
    complete = contents is not UNKNOWN and all(c is not UNKNOWN for c in dependents.values())
    if complete and (request.app[COMMITS].git is None or origins <= commits.keys()):
        request.app[RENDERED].put(key, body)
    return pages.respond(body)

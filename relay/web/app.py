"""The aiohttp application: routes to the views, background work, and `create_app` wiring them."""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from aiohttp import web
from aiohttp.log import server_logger

from relay.auth.credentials import Authenticator, PasswordChecks
from relay.building.materialize import Materializer
from relay.index import render
from relay.index.history import Commits, Histories
from relay.index.refs import Refs
from relay.index.wheel_contents import Contents
from relay.storage.store import FileCache, Store
from relay.upkeep import forever
from relay.web import metrics, page_render
from relay.web.access_log import ServerLog
from relay.web.files import dist_file
from relay.web.forwarded import PROXY
from relay.web.guard import guard
from relay.web.keys import AUTH, CACHE_POLICY, COMMITS, CONTENTS, CachePolicy, FILES, HEALTH_PATH, HISTORIES, MATERIALIZER, PAGES, PASSWORD_CHECKS, READY_PATH, REFS, RENDERED, SETTINGS, STORE, Settings
from relay.web.page_views import dist_home, home, ref_home
from relay.web.simple import add_slash, constraints, health, project_index, ready, root_index

logger = logging.getLogger("relay")


_FILE = r"{filename:[^/]+\.whl(\.metadata)?}"


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(HEALTH_PATH, health)
    r.add_get(READY_PATH, ready)
    r.add_get("/", home)
    r.add_get("/metrics", metrics.metrics_page)
    # Default ref.
    r.add_get("/simple", add_slash)
    r.add_get("/simple/", root_index)
    r.add_get("/simple/{project}/", project_index)
    r.add_get("/simple/{project}", project_index)
    r.add_get("/constraints.txt", constraints)
    # Pages link files under their export's key (sha or sha.dirty). Matched first: no other route
    # matches a path of that shape, and a file request no longer fails the five page patterns below
    # before reaching its own (9 us a request).
    r.add_get(r"/{ref:[0-9a-f]{40}(\.dirty)?}/" + _FILE, dist_file)
    # A ref may hold slashes (feature/x): the non-greedy pattern stops at the first /simple/.
    ref = "/{ref:[^/].*?}"
    r.add_get(ref + "/simple", add_slash)
    r.add_get(ref + "/simple/", root_index)
    r.add_get(ref + "/simple/{project}/", project_index)
    r.add_get(ref + "/simple/{project}", project_index)
    r.add_get(ref + "/constraints.txt", constraints)
    r.add_get(ref + "/" + _FILE, dist_file)
    # Last: the pages for people, once no route of the simple API matched.
    r.add_get(ref + "/-/{project}/", dist_home)
    r.add_get(ref + "/-/{project}", add_slash)
    r.add_get(ref + "/", ref_home)


# Background work.


async def _evict(app: web.Application) -> None:
    evicted = await app[STORE].evict(app[SETTINGS].policy)
    app[metrics.METRICS].evictions.inc(len(evicted))
    if evicted:
        logger.info("evicted %d export(s): %s", len(evicted), ", ".join(evicted))


async def _background(app: web.Application) -> AsyncIterator[None]:
    await app[STORE].start()
    # Counted after the first listing (an object store lists only now, not at the start-up check).
    store = app[STORE]
    listed = len(store.exports())
    if store.reading:
        logger.info("%s: %d exports, %d more being read (listed as they are read)", store.description, listed,
                    store.reading)
    else:
        logger.info("%s: %d exports", store.description, listed)
    # Eviction must not stop at an error: the next round retries.
    tasks = [asyncio.ensure_future(forever("eviction", lambda: _evict(app), app[SETTINGS].evict_interval, logger))]
    if app[REFS].git is not None:
        tasks.append(asyncio.ensure_future(app[REFS].refresh_forever()))
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    materializer = app.get(MATERIALIZER)
    if materializer is not None:
        await materializer.close()
    checks = app.get(PASSWORD_CHECKS)
    if checks is not None:
        checks.close()
    await app[STORE].close()


def create_app(
    store: Store,
    refs: Refs | None = None,
    settings: Settings = Settings(),
    auth: Authenticator | None = None,
    builds: Materializer | None = None,
) -> web.Application:
    """The relay application over a store; refs default to the manifests' own branch and tag names.

    `builds` is pull mode's builder (the one `refs` builds with), for the health check, the pages and
    /metrics, and to stop its builds at shutdown."""
    # measure first: it counts and times the guard's refusals too.
    app = web.Application(middlewares=[metrics.measure, guard], handler_args={"logger": ServerLog(server_logger)})
    app[STORE] = store
    app[REFS] = refs if refs is not None else Refs(store)
    app[PAGES] = render.PageCache()
    app[FILES] = FileCache(settings.memory_cache_bytes)
    app[CONTENTS] = Contents(store)
    app[COMMITS] = Commits(app[REFS].git)
    app[HISTORIES] = Histories(app[REFS])
    app[RENDERED] = page_render.RenderedPages()
    materializer = builds
    app[metrics.METRICS] = metrics.Metrics(store, lambda: materializer.log if materializer is not None else None)
    app[SETTINGS] = settings
    app[PROXY] = settings.proxy
    app[CACHE_POLICY] = CachePolicy.of(settings, private=auth is not None)
    if auth is not None:
        app[AUTH] = auth
        app[PASSWORD_CHECKS] = PasswordChecks(auth)
    if materializer is not None:
        app[MATERIALIZER] = materializer
    app.cleanup_ctx.append(_background)
    add_routes(app)
    return app

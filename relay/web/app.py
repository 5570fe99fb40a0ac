"""The aiohttp application: settings, routes and thin handlers over refs, store and render."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger
from packaging.utils import canonicalize_name

from relay.web import metrics, page_render, pages

from relay.index import render

from relay import resources
from relay.auth.credentials import Authenticator, PasswordChecks, TooManyChecks
from relay.web.forwarded import PROXY, ProxySettings, client_address, may_carry_credentials, public_base_url
from relay.index.constraints import constraints_text, url_requirements
from relay.index.history import Commits, Histories, parse_requirement
from relay.web.install_lines import Where, install_lines
from relay.web.page_models import dependents_of, dist_page_model, ref_page_model
from relay.index.wheel_contents import UNKNOWN, Contents
from relay.building.materialize import Materializer
from relay.errors import RelayError
from relay.index.refs import RefError, Refs, View
from relay.contract import ContractError
from relay.resources import is_resource_error
from relay.storage.store import Blob, EvictionPolicy, FileCache, NotListed, Store, StoreUnavailable

logger = logging.getLogger("relay")
access_logger = logging.getLogger("relay.access")

# PEP 508 names; anything else in the project position is rejected before any lookup.
_PROJECT_NAME = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")
_UNSAFE_RAW = re.compile(r"%(2f|5c|00)|\\|\x00", re.IGNORECASE)
IMMUTABLE = "max-age=31536000, immutable"
HEALTH_PATH = "/-/health"
# Readiness, for load balancers: 503 while the store (or, in pull mode, the builder) cannot serve.
READY_PATH = "/-/ready"
OPEN_PATHS = frozenset({HEALTH_PATH, READY_PATH})
# On a branch page served from an older commit: the newer tip being built.
BUILDING_HEADER = "X-Relay-Building"
# The log line format of `relay serve` (the access log writes it without `logging` where it can).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


@dataclass(frozen=True)
class Settings:
    default_ref: str = "main"
    upstream: str | None = None
    # Names under these namespaces are never sent upstream, even if no export has them yet.
    namespaces: tuple[str, ...] = ()
    branch_max_age: int = 60
    policy: EvictionPolicy = EvictionPolicy()
    evict_interval: float = 600.0
    # Small wheels and .metadata files kept in memory (0: always read from disk).
    memory_cache_bytes: int = 128 * 1024 * 1024
    # Answer file requests with a redirect to a short-lived URL where the store has one (S3).
    redirect_files: bool = False
    # --public-url, --trusted-proxy, --proxy-headers: how clients see the relay behind a proxy.
    proxy: ProxySettings = ProxySettings()


@dataclass(frozen=True)
class CachePolicy:
    """The Cache-Control values of pages and files, fixed at start-up (not rebuilt per request)."""

    immutable: str  # a view addressed by commit
    branch: str  # a branch or tag, which moves
    building: str  # a branch whose newer tip is being built: revalidate, the page changes soon

    @staticmethod
    def of(settings: Settings, private: bool) -> CachePolicy:
        # Behind credentials, shared caches must not keep the answers.
        scope = "private" if private else "public"
        return CachePolicy(f"{scope}, {IMMUTABLE}", f"{scope}, max-age={settings.branch_max_age}", f"{scope}, no-cache")


STORE = web.AppKey("store", Store)
REFS = web.AppKey("refs", Refs)
PAGES = web.AppKey("pages", render.PageCache)
FILES = web.AppKey("files", FileCache)
PASSWORD_CHECKS = web.AppKey("password_checks", PasswordChecks)
SETTINGS = web.AppKey("settings", Settings)
CACHE_POLICY = web.AppKey("cache_policy", CachePolicy)
AUTH = web.AppKey("auth", Authenticator)
MATERIALIZER = web.AppKey("materializer", Materializer)
CONTENTS = web.AppKey("contents", Contents)
COMMITS = web.AppKey("commits", Commits)
HISTORIES = web.AppKey("histories", Histories)
RENDERED = web.AppKey("rendered", page_render.RenderedPages)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AccessLogger(AbstractAccessLogger):
    """One logfmt line per request: method, path, status, time in ms, client, bytes.

    Where the line goes through a plain stream handler with LOG_FORMAT (as `relay serve` sets it up),
    the line is written to that stream directly, byte for byte what `logging` would write: a
    LogRecord, a caller lookup and a Formatter per request were 14-18 % of a page request's time.
    Any other set-up (tests' capture, a filter, another format) gets the record through `logging`.
    logging's own way off the hot path, QueueHandler + QueueListener, was measured against this
    (docs/benchmarks.md, hardening part): 283 against 170 us of relay CPU a page request, 639 against
    1,162 req/s; the record is still built on the loop and the listener thread takes the GIL per line.
    """

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        handler = _plain_stream_handler(logger)
        self._lines = None if handler is None else _lines_of(handler)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, elapsed: float) -> None:
        message = (
            f'method={request.method} path="{request.path_qs.replace(chr(34), "%22")}" '
            f"status={response.status} ms={elapsed * 1000:.1f} client={client_address(request)} "
            f"bytes={response.body_length or response.content_length or 0}"
        )
        if self._lines is None:
            self.logger.info("%s", message)
            return
        now = time.time()
        self._lines.add(f"{_log_second(int(now))},{int((now - int(now)) * 1000):03d} INFO {self.logger.name} {message}\n")


class _Lines:
    """Access log lines of one event-loop turn, written together: under load one write carries many."""

    def __init__(self, handler: logging.StreamHandler) -> None:  # type: ignore[type-arg]
        self._handler = handler
        self._lines: list[str] = []

    def add(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) == 1:
            asyncio.get_running_loop().call_soon(self.write)

    def write(self) -> None:
        text = "".join(self._lines)
        self._lines.clear()
        with self._handler.lock:  # type: ignore[union-attr]
            try:
                self._handler.stream.write(text)
                self._handler.stream.flush()
            except (OSError, ValueError):
                pass  # a broken log stream must not fail requests: these lines are lost


@functools.lru_cache(maxsize=None)
def _lines_of(handler: logging.Handler) -> _Lines:
    return _Lines(handler)  # type: ignore[arg-type]


def _plain_stream_handler(logger: logging.Logger) -> logging.StreamHandler | None:  # type: ignore[type-arg]
    """The one handler an INFO line of `logger` reaches, if it only formats with LOG_FORMAT and writes."""
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        handlers += current.handlers
        current = current.parent if current.propagate else None
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    formatter = handler.formatter
    plain = (
        type(handler) in (logging.StreamHandler, logging.FileHandler)
        and not handler.filters
        and handler.level <= logging.INFO
        and handler.terminator == "\n"  # type: ignore[attr-defined]
        and type(formatter) is logging.Formatter
        and formatter._fmt == LOG_FORMAT
        and formatter.datefmt is None
        and formatter.converter is time.localtime
        and formatter.default_time_format == "%Y-%m-%d %H:%M:%S"
        and formatter.default_msec_format == "%s,%03d"
    )
    return handler if plain else None  # type: ignore[return-value]


@functools.lru_cache(maxsize=4)
def _log_second(second: int) -> str:
    """`logging`'s asctime up to the second: formatted once a second, not once a line."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))


class ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's connection logger, where a request aiohttp cannot parse is one INFO line.

    A malformed request line or header is the client's error, not the server's: aiohttp logs it at
    ERROR with a traceback, which lets any client fill the log with tracebacks.
    """

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            client = args[0] if args else "?"
            reason = " ".join(str(exc.message or exc).split())[:200]
            # aiohttp's DEBUG (non-HTTP traffic on a first request) stays DEBUG.
            self.logger.log(min(level, logging.INFO), "bad request from %s: %s %s", client, exc.code, reason)
            return
        super().log(level, msg, *args, **kwargs)


# Middlewares.


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request, whatever the route: path safety, then credentials, then a RefError as its answer.

    One middleware, not one per concern: each layer is another coroutine per request.
    """
    refusal = _path_refusal(request.raw_path.split("?", 1)[0])
    if refusal is not None:
        return _error(400, refusal)
    auth = request.app.get(AUTH)
    if auth is not None and request.path not in OPEN_PATHS:
        header = request.headers.get("Authorization")
        user = auth.check(header, slow=False)
        if user is False:
            assert header is not None
            try:
                user = await request.app[PASSWORD_CHECKS].check(header, client_address(request))
            except TooManyChecks as e:
                response = _error(429, str(e))
                response.headers["Retry-After"] = str(e.retry_after)
                return response
        if not user:
            response = _error(401, "authentication required: give a user and password or a token")
            response.headers["WWW-Authenticate"] = 'Basic realm="relay", charset="UTF-8"'
            return response
    try:
        return await handler(request)
    except StoreUnavailable as e:
        return _error(503, f"the store is unavailable: {e}; try again shortly")
    except RelayError as e:
        response = _error(e.status, e.message)
        response.headers.update(e.headers)
        return response


@functools.lru_cache(maxsize=4096)
def _path_refusal(raw: str) -> str | None:
    """Why a raw path is refused (traversal, encoded separators), or None; clients repeat paths."""
    segments = unquote(raw).split("/")
    if _UNSAFE_RAW.search(raw) or not raw.startswith("/") or any(s in (".", "..") for s in segments):
        return f"path {raw!r} is not allowed: no '..', '.', encoded slashes or backslashes"
    if "" in segments[1:-1]:
        return f"path {raw!r} is not allowed: empty path segment"
    return None


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers={"Cache-Control": "no-store"})


# Helpers shared by the handlers.


async def _view(request: web.Request) -> View:
    ref = request.match_info.get("ref") or request.app[SETTINGS].default_ref
    view = await request.app[REFS].resolve(ref)
    request.app[STORE].touch(view.tip.key)
    return view


def _base(request: web.Request, levels_below_ref: int) -> str:
    """The relative way from a page back to the root (links stay right behind a path prefix)."""
    ref = request.match_info.get("ref")
    depth = (ref.count("/") + 1 if ref else 0) + levels_below_ref
    return "../" * depth


def _cache_control(request: web.Request, view: View) -> str:
    policy = request.app[CACHE_POLICY]
    if view.building is not None:
        return policy.building
    return policy.immutable if view.immutable else policy.branch


def _etag_matches(request: web.Request, *etags: str) -> bool:
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    # Weak comparison (RFC 9110): a W/ prefix does not matter for If-None-Match.
    offered = {t.strip()[2:] if t.strip().startswith("W/") else t.strip() for t in header.split(",")}
    return "*" in offered or any(e in offered for e in etags)


def _media_type(request: web.Request) -> str:
    # ?format= overrides Accept, as on PyPI, for browsers and curl. A `+` typed unencoded reads as a
    # space in a query; no media type holds a space.
    fmt = request.query.get("format")
    media_type = render.negotiate(fmt.replace(" ", "+") if fmt else request.headers.get("Accept"))
    if media_type is None:
        raise RefError(406, f"none of the requested types is served; use one of: {', '.join(render.OFFERS)}")
    return media_type


def _page_response(request: web.Request, rendered: render.Rendered, view: View) -> web.Response:
    gz = "gzip" in request.headers.get("Accept-Encoding", "").lower()
    etag = rendered.gzip_etag if gz else rendered.etag
    headers = {
        "ETag": etag,
        "Cache-Control": _cache_control(request, view),
        "Vary": "Accept, Accept-Encoding, Authorization",
        "X-Relay-Commit": view.sha,
    }
    if view.building is not None:
        headers[BUILDING_HEADER] = view.building
    if _etag_matches(request, rendered.etag, rendered.gzip_etag):
        return web.Response(status=304, headers=headers)
    if gz:
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = rendered.content_type
    return web.Response(body=rendered.gzipped if gz else rendered.body, headers=headers)


def _reserved(request: web.Request, project: str) -> bool:
    """A name the monorepo owns: never sent upstream, so no public package can shadow it."""
    exports = [s.export for s in request.app[STORE].exports().values()]
    namespaces = {canonicalize_name(n) for n in request.app[SETTINGS].namespaces}
    namespaces |= {canonicalize_name(e.namespace) for e in exports}
    if any(project == n or project.startswith(n + "-") for n in namespaces):
        return True
    return any(e.dist(project) is not None for e in exports)


def _url_requirement_hint(request: web.Request, view: View, project: str) -> str:
    """For a name the ref's dists require by URL: where it comes from, and the line that installs it."""
    tip = view.tip
    lines = [r for r in url_requirements(tip) if parse_requirement(r).project == project]
    if not lines:
        return ""
    dist = next((d for d in tip.dists if any(parse_requirement(r).project == project for r in d.requires_dist)), None)
    names = (dist.name,) if dist is not None else ("NAME",)
    line = install_lines(_where(request), view.ref, view.sha, names, url_requirements=True, pip="pip").install
    return (
        f"; the dists of {view.ref!r} require it by URL ({lines[0]}), which uv installs only as a direct "
        f"requirement or a constraint: install with this ref's constraints file, e.g. {line.text}"
    )


# Handlers.


async def health(request: web.Request) -> web.Response:
    if AUTH in request.app:
        # Open to anyone: with credentials on, say nothing about the store or what is being built.
        return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})
    materializer = request.app.get(MATERIALIZER)
    builds = materializer.status() if materializer else []
    body = {
        "status": "ok",
        "exports": len(request.app[STORE].exports()),
        "building": [b["sha"] for b in builds],
        "builds": builds,
    }
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
    media_type = _media_type(request)
    view = await _view(request)
    rendered = request.app[PAGES].get(
        ("root", view.keys), lambda: render.root_page(view.exports), media_type, view.exports
    )
    assert rendered is not None
    return _page_response(request, rendered, view)


async def project_index(request: web.Request) -> web.StreamResponse:
    name = request.match_info["project"]
    if not _PROJECT_NAME.fullmatch(name):
        raise RefError(400, f"{name!r} is not a valid project name (PEP 508)")
    project = canonicalize_name(name)
    if name != project or not request.path.endswith("/"):
        # Relative, so the redirect also works behind a path prefix.
        location = ("../" if request.path.endswith("/") else "") + project + "/"
        if request.query_string:
            location += "?" + request.query_string
        raise web.HTTPMovedPermanently(location)
    media_type = _media_type(request)
    view = await _view(request)
    base = _base(request, 2)
    rendered = request.app[PAGES].get(
        ("project", view.keys, project, base),
        lambda: render.project_page(project, view.exports, lambda key, f: render.file_url(base, key, f)),
        media_type,
        view.exports,
    )
    if rendered is not None:
        return _page_response(request, rendered, view)
    if _reserved(request, project):
        raise RefError(404, f"{project!r} has no dist at {view.ref!r} ({view.sha[:12]})")
    upstream = request.app[SETTINGS].upstream
    if upstream is None:
        message = f"{project!r} is not a project of this relay and no --upstream is configured"
        raise RefError(404, message + _url_requirement_hint(request, view, project))
    # 302, not 301: the name may become a monorepo project later.
    raise web.HTTPFound(f"{upstream.rstrip('/')}/{project}/", headers={"Cache-Control": "max-age=300"})


async def dist_file(request: web.Request) -> web.StreamResponse:
    filename = request.match_info["filename"]
    view = await _view(request)
    store = request.app[STORE]
    for export in view.exports:
        digest = export.digest(filename)
        if digest is None:
            continue
        sha256, size = digest
        kind = "application/octet-stream" if filename.endswith(".whl") else "text/plain; charset=utf-8"
        headers = {
            "Cache-Control": _cache_control(request, view),
            "Content-Type": kind,
            # The content's own hash: the same file has the same ETag under every ref.
            "ETag": f'"{sha256}"',
        }
        store.touch(export.key)
        if _etag_matches(request, headers["ETag"]):
            return web.Response(status=304, headers=headers)
        cache = request.app[FILES]
        # A file in memory needs no store: it was checked against this sha256 when it was read.
        body = cache.get(sha256) if cache.fits(size) else None
        if body is not None:
            return web.Response(body=body, headers=headers)
        try:
            return await _send_file(request, store, export.key, filename, sha256, size, headers)
        except NotListed:
            continue  # evicted or removed since the listing
    raise RefError(404, f"no file {filename!r} at {view.ref!r}")


async def _send_file(
    request: web.Request, store: Store, key: str, filename: str, sha256: str, size: int, headers: dict[str, str]
) -> web.StreamResponse:
    """A file from the store: small ones read whole, checked and kept in memory; large ones streamed
    (checked by the store) or, with --redirect-files, fetched by the client from a short-lived URL."""
    cache = request.app[FILES]
    where = f"{key}/{filename}"
    loop = asyncio.get_running_loop()
    try:
        if request.app[SETTINGS].redirect_files and not cache.fits(size):
            url = await store.url(key, filename)
            if url is not None:
                # Not cached anywhere: the URL expires; the file under it never changes.
                raise web.HTTPFound(url, headers={"Cache-Control": "no-store", "ETag": headers["ETag"]})
        with store.lease(key):
            if cache.fits(size):
                raw = await store.read(key, filename)
                body = await loop.run_in_executor(None, cache.check, raw, sha256, where)
                cache.put(sha256, body)
                return web.Response(body=body, headers=headers)
            async with store.open(key, filename) as blob:
                if blob.size != size:
                    raise ContractError(f"{where}: {blob.size} bytes, the manifest says {size}")
                return await _stream(request, blob, headers)
    except StoreUnavailable as e:
        logger.warning("serving %s: %s", where, e)
        raise RefError(503, f"the store is unavailable: {e}; try again shortly") from None
    except ContractError as e:
        logger.error("serving %s: %s", where, e)
        raise RefError(502, f"the export {key} is damaged: {filename} cannot be served") from None
    except OSError as e:
        if not is_resource_error(e):
            logger.error("serving %s: %s", where, e)
            raise RefError(502, f"the export {key} is damaged: {filename} cannot be served") from None
        resources.report("serving files", e)
        raise RefError(503, "the relay is short of file descriptors or memory; retry shortly") from None


async def _stream(request: web.Request, blob: Blob, headers: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(headers=headers)
    response.content_length = blob.size
    writer = await response.prepare(request)
    if request.method != "HEAD" and writer is not None:
        if blob.file is not None:
            # What aiohttp's FileResponse does: the headers first, then the kernel copies the file.
            await writer.drain()
            assert request.transport is not None
            await asyncio.get_running_loop().sendfile(request.transport, blob.file, 0, blob.size)  # type: ignore[arg-type]
        else:
            try:
                async for chunk in blob.chunks:
                    await response.write(chunk)
            except (ContractError, StoreUnavailable) as e:
                # The status line and part of the body are out: the one honest answer left is a
                # response cut off before its last byte (the store holds back the last piece until
                # the whole object matched the manifest), which every client rejects.
                logger.error("serving %s: %s; the response was cut off", request.path, e)
                if request.transport is not None:
                    request.transport.abort()
                return response
    await response.write_eof()
    return response


async def constraints(request: web.Request) -> web.Response:
    view = await _view(request)
    tip = view.tip
    body = constraints_text(tip, view.ref).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": _cache_control(request, view), "X-Relay-Commit": tip.sha}
    if _etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="text/plain", charset="utf-8", headers=headers)


# The pages for people (relay/web/pages.py renders them).


def _page_context(request: web.Request) -> pages.Context:
    materializer = request.app.get(MATERIALIZER)
    return pages.Context(
        store=request.app[STORE],
        refs=request.app[REFS],
        default_ref=request.app[SETTINGS].default_ref,
        builds=materializer.log if materializer is not None else None,
        auth=AUTH in request.app,
    )


async def home(request: web.Request) -> web.Response:
    context = _page_context(request)
    return pages.respond(pages.home_page(context, await pages.ref_rows(context)))


def _where(request: web.Request) -> Where:
    """How a person's installer reaches this relay: the base of every URL a page tells them to copy."""
    base = public_base_url(request)
    auth = AUTH in request.app
    return Where(
        base=str(base),
        auth=auth,
        credentials=auth and may_carry_credentials(base),
        upstream=request.app[SETTINGS].upstream is not None,
    )


async def ref_home(request: web.Request) -> web.Response:
    context = _page_context(request)
    ref, base = request.match_info["ref"], _base(request, 0)
    try:
        view = await _view(request)
    except RefError as error:
        return await pages.not_found(context, ref, error, base)
    where, query = _where(request), request.query.get("q", "")
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
    context = _page_context(request)
    ref, name, base = request.match_info["ref"], request.match_info["project"], _base(request, 2)
    project = canonicalize_name(name) if _PROJECT_NAME.fullmatch(name) else None
    if project is None:
        raise RefError(400, f"{name!r} is not a valid project name (PEP 508)")
    if name != project:
        raise web.HTTPMovedPermanently(f"../{project}/")
    try:
        view = await _view(request)
    except RefError as error:
        return await pages.not_found(context, ref, error, base)
    tip = view.tip
    dist = tip.dist(project)
    if dist is None:
        message = f"{view.ref} ({view.sha[:12]}) has no dist {project!r}" + _url_requirement_hint(request, view, project)
        return pages.respond(pages.error_page(ref, message, base, title=f"No dist {project} here"), status=404)
    where = _where(request)
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


async def add_slash(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(request.path.rsplit("/", 1)[-1] + "/")


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


async def _evict_forever(app: web.Application) -> None:
    settings = app[SETTINGS]
    while True:
        try:
            evicted = await app[STORE].evict(settings.policy)
            app[metrics.METRICS].evictions.inc(len(evicted))
            if evicted:
                logger.info("evicted %d export(s): %s", len(evicted), ", ".join(evicted))
        except Exception:  # noqa: BLE001 - eviction must not stop; the next round retries.
            logger.exception("eviction failed")
        await asyncio.sleep(settings.evict_interval)


async def _background(app: web.Application) -> AsyncIterator[None]:
    await app[STORE].start()
    # Counted after the first listing (an object store lists only now, not at the start-up check).
    logger.info("%s: %d exports", app[STORE].description, len(app[STORE].exports()))
    tasks = [asyncio.ensure_future(_evict_forever(app))]
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

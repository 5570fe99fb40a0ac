"""The application's settings and typed keys (what handlers find on `request.app`), and the paths and headers they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

from relay.auth.credentials import Authenticator, PasswordChecks
from relay.building.materialize import Materializer
from relay.index import render
from relay.index.history import Commits, Histories
from relay.index.refs import Refs
from relay.index.wheel_contents import Contents
from relay.storage.store import EvictionPolicy, FileCache, Store
from relay.web import page_render
from relay.web.forwarded import ProxySettings

IMMUTABLE = "max-age=31536000, immutable"
HEALTH_PATH = "/-/health"
# Readiness, for load balancers: 503 while the store (or, in pull mode, the builder) cannot serve.
READY_PATH = "/-/ready"
OPEN_PATHS = frozenset({HEALTH_PATH, READY_PATH})
# On a branch page served from an older commit: the newer tip being built.
BUILDING_HEADER = "X-Relay-Building"


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

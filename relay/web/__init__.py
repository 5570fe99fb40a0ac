"""HTTP: the aiohttp application (simple API, files, pages for people, metrics) and how it is served."""

from __future__ import annotations

from relay.web.app import LOG_FORMAT, AccessLogger, Settings, create_app
from relay.web.server import ConnectionLimits, default_max_connections, serve

__all__ = [
    "LOG_FORMAT",
    "AccessLogger",
    "ConnectionLimits",
    "Settings",
    "create_app",
    "default_max_connections",
    "serve",
]

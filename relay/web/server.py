"""Serving connections: silent and slow clients time out, open connections are capped, and the
event loop's resource errors are logged once per interval (what `relay serve` runs the app with)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web
from aiohttp.web_runner import GracefulExit

from relay import resources

logger = logging.getLogger("relay")

# File descriptors kept for everything but client connections (store files, git, logs, the auth file).
RESERVED_FILES = 64
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\nthe relay has too many connections open\n"
)


@dataclass(frozen=True)
class ConnectionLimits:
    # A connection that completes no request head for this long is closed: a silent or slow client
    # on a fresh connection, or an idle kept-alive one (aiohttp's keep-alive timeout, set to this).
    idle_timeout: float = 15.0
    # Beyond this many open connections, a new one is answered 503 and closed at once.
    max_connections: int = 1000


def default_max_connections(requested: int | None) -> int:
    """The cap to use: as asked, else 1,000 or what the file-descriptor limit leaves room for."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = 1000 if soft == resource.RLIM_INFINITY else max(8, soft - max(RESERVED_FILES, soft // 4))
    if requested is None:
        return min(1000, room)
    if requested > room:
        logger.warning(
            "--max-connections %d is more than the file-descriptor limit (%d) leaves room for; "
            "connections beyond about %d will fail to be accepted", requested, soft, room,
        )
    return requested


class _Guard:
    """A protocol factory around aiohttp's: counts connections, refuses beyond the cap, and closes
    a connection whose first request head does not arrive in time (aiohttp only times out idle
    connections after a response)."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], limits: ConnectionLimits) -> None:
        self.factory = factory
        self.limits = limits
        self.open = 0

    def __call__(self) -> asyncio.Protocol:
        return _GuardedProtocol(self)


class _GuardedProtocol(asyncio.Protocol):
    def __init__(self, guard: _Guard) -> None:
        self._guard = guard
        self._inner: Any = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        # The last bytes seen, so a head's end split across two reads is still found.
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        guard = self._guard
        if guard.open >= guard.limits.max_connections:
            resources.problems.log(
                "connections",
                "connection limit reached (%d open): new connections are answered 503",
                guard.open, level=logging.WARNING,
            )
            transport.write(_REFUSAL)
            transport.close()
            return
        guard.open += 1
        self._transport = transport
        self._inner = guard.factory()
        self._inner.connection_made(transport)
        self._timer = asyncio.get_running_loop().call_later(guard.limits.idle_timeout, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._timer is not None:
            seen = self._tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:
                self._timer.cancel()
                self._timer = None
                self._tail = b""
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._inner is None else self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        self._guard.open -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        inner, self._inner, self._transport = self._inner, None, None
        inner.connection_lost(exc)


class GuardedSite(web.BaseSite):
    """A listening socket (bound here, or given) whose connections go through a _Guard."""

    def __init__(
        self,
        runner: web.BaseRunner,
        limits: ConnectionLimits,
        host: str | None = None,
        port: int | None = None,
        sock: socket.socket | None = None,
        backlog: int = 1024,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._limits = limits
        self._host = host
        self._port = port
        self._sock = sock

    @property
    def name(self) -> str:
        if self._sock is not None:
            host, port = self._sock.getsockname()[:2]
        else:
            host, port = self._host, self._port
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        assert self._runner.server is not None
        guard = _Guard(self._runner.server, self._limits)
        if self._sock is not None:
            self._server = await loop.create_server(guard, sock=self._sock, backlog=self._backlog)
        else:
            self._server = await loop.create_server(
                # No port: any free one, as asyncio binds port None.
                guard, self._host, self._port or 0, backlog=self._backlog, reuse_address=True
            )


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Resource errors (accept() out of descriptors, retried every second) once per interval."""
    exc = context.get("exception")
    if resources.is_resource_error(exc):
        assert exc is not None
        resources.report(str(context.get("message", "the event loop")), exc)
        return
    if isinstance(exc, ValueError) and "_start_serving" in repr(context.get("handle")):
        # asyncio retries accept() a second after running out of descriptors, and does not cancel
        # that retry when the server closes: at shutdown it fails on the closed socket. Harmless.
        logger.debug("accept retry after shutdown: %s", exc)
        return
    loop.default_exception_handler(context)


def serve(
    app: web.Application,
    limits: ConnectionLimits,
    *,
    host: str | None = None,
    port: int | None = None,
    sock: socket.socket | None = None,
    shutdown_timeout: float = 30.0,
    **runner_kwargs: Any,
) -> None:
    """Serve `app` until SIGINT or SIGTERM, then let in-flight requests finish (as web.run_app)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(_exception_handler)
    runner = web.AppRunner(
        app, handle_signals=True, keepalive_timeout=limits.idle_timeout, shutdown_timeout=shutdown_timeout,
        **runner_kwargs,
    )

    async def run() -> None:
        await runner.setup()
        try:
            await GuardedSite(runner, limits, host, port, sock).start()
            while True:
                await asyncio.sleep(3600)
        finally:
            await runner.cleanup()

    task = loop.create_task(run())
    try:
        loop.run_until_complete(task)
    except (GracefulExit, KeyboardInterrupt):
        pass
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, GracefulExit, KeyboardInterrupt):
            loop.run_until_complete(task)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

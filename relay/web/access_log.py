"""The access log (one logfmt line per request, written straight to its stream) and aiohttp's connection log."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from relay.web.forwarded import client_address

logger = logging.getLogger("relay")
# The log line format of `relay serve` (the access log writes it without `logging` where it can).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
access_logger = logging.getLogger("relay.access")


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

"""The access log (one logfmt line per request, written straight to its stream) and aiohttp's connection log."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any, TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from relay.web.forwarded import client_address

logger = logging.getLogger("relay")
# The log line format of `relay serve` (its access log writes it without `logging`).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
access_logger = logging.getLogger("relay.access")


class AccessLogger(AbstractAccessLogger):
    """One logfmt line per request: method, path, status, time in ms, client, bytes, through `logging`
    (whatever it is set up to do: tests' capture, a filter, another format).

    `relay serve` writes the same lines with `writing_to`, straight to its log stream.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, elapsed: float) -> None:
        self.logger.info("%s", _message(request, response, elapsed))

    @staticmethod
    def writing_to(handler: logging.StreamHandler[TextIO]) -> type[AbstractAccessLogger]:
        """An access logger that writes its lines to `handler`'s stream itself, byte for byte what the
        handler would write with LOG_FORMAT (the caller's promise: `relay serve` made that handler),
        under the handler's lock, so no line of another thread is cut.

        A LogRecord, a caller lookup and a Formatter per request were 14-18 % of a page request's time.
        logging's own way off the hot path, QueueHandler + QueueListener, was measured against this
        (docs/benchmarks.md, hardening part): 283 against 170 us of relay CPU a page request, 639
        against 1,162 req/s; the record is still built on the loop and the listener thread takes the
        GIL per line.
        """
        lines = _Lines(handler)

        class StreamAccessLogger(AbstractAccessLogger):
            def log(self, request: web.BaseRequest, response: web.StreamResponse, elapsed: float) -> None:
                now = time.time()
                lines.add(
                    f"{_log_second(int(now))},{int((now - int(now)) * 1000):03d} INFO {self.logger.name} "
                    f"{_message(request, response, elapsed)}\n"
                )

        return StreamAccessLogger


def _message(request: web.BaseRequest, response: web.StreamResponse, elapsed: float) -> str:
    return (
        f'method={request.method} path="{request.path_qs.replace(chr(34), "%22")}" '
        f"status={response.status} ms={elapsed * 1000:.1f} client={client_address(request)} "
        f"bytes={response.body_length or response.content_length or 0}"
    )


class _Lines:
    """Access log lines of one event-loop turn, written together: under load one write carries many."""

    def __init__(self, handler: logging.StreamHandler[TextIO]) -> None:
        self._handler = handler
        self._lines: list[str] = []

    def add(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) == 1:
            asyncio.get_running_loop().call_soon(self.write)

    def write(self) -> None:
        text = "".join(self._lines)
        self._lines.clear()
        self._handler.acquire()
        try:
            self._handler.stream.write(text)
            self._handler.stream.flush()
        except (OSError, ValueError):
            pass  # a broken log stream must not fail requests: these lines are lost
        finally:
            self._handler.release()


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

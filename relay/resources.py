"""Running out of file descriptors, buffers or memory: told once per interval, not once per attempt."""

from __future__ import annotations

import errno
import logging
import threading
import time

logger = logging.getLogger("relay.resources")

# What a busy or attacked relay runs out of; every attempt fails alike until some are released.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
LOG_INTERVAL_SECONDS = 60.0


def is_resource_error(exc: BaseException | None) -> bool:
    return isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS


class OnceAnInterval:
    """Logs a kind of problem at most once per interval, with how many were not logged since."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        # kind -> (when last logged, occurrences not logged since)
        self._state: dict[str, tuple[float, int]] = {}

    def log(self, kind: str, message: str, *args: object, level: int = logging.ERROR) -> bool:
        now = time.monotonic()
        with self._lock:
            last, unlogged = self._state.get(kind, (float("-inf"), 0))
            if now - last < self.interval:
                self._state[kind] = (last, unlogged + 1)
                return False
            self._state[kind] = (now, 0)
        suffix = f" ({unlogged} more since the last such line)" if unlogged else ""
        logger.log(level, message + "%s", *args, suffix)
        return True


problems = OnceAnInterval()


def report(what: str, exc: BaseException) -> None:
    """One line per interval for a resource error while doing `what`."""
    strerror = getattr(exc, "strerror", None) or str(exc)
    problems.log(
        f"{getattr(exc, 'errno', '')}",
        "%s: %s; requests fail until some are released (lower --max-connections or raise `ulimit -n`)",
        what, strerror,
    )

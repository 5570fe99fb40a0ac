"""What the relay keeps doing while it runs: problems logged once while they last, and loops that outlive their failures."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Container, Iterator, Mapping, Union

Interval = Union[float, Callable[[], float]]


class Problems(Mapping[str, str]):
    """Problems by key (an export, an entry of the store, "" for the whole thing), each logged when it
    appears, not on every attempt that meets it again; what is wrong now, for whoever asks (`check`,
    readiness).

    A problem is logged again when its message changes (`again_when_changed`; an outage's messages
    name each failed request, so a bucket logs it once), and after `resolve` forgot it.
    """

    def __init__(
        self,
        logger: logging.Logger,
        prefix: str = "",
        *,
        again_when_changed: bool = True,
        level: int = logging.WARNING,
    ) -> None:
        self._logger = logger
        self._prefix = prefix
        self._again_when_changed = again_when_changed
        self._level = level
        self._now: dict[str, str] = {}

    def report(self, message: str, key: str = "") -> bool:
        """Remember the problem of `key`; log it if it is new (or changed). True if it was logged."""
        before = self._now.get(key)
        self._now[key] = message
        if before is None or (self._again_when_changed and before != message):
            self._logger.log(self._level, "%s%s", self._prefix, message)
            return True
        return False

    def resolve(self, key: str = "") -> str | None:
        """Forget the problem of `key` (it is solved or gone); the problem it had, if any."""
        return self._now.pop(key, None)

    def keep_only(self, keys: Container[str]) -> None:
        """Forget the problems of every key not in `keys` (what is no longer there has no problem)."""
        for key in [k for k in self._now if k not in keys]:
            del self._now[key]

    def __getitem__(self, key: str) -> str:
        return self._now[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._now)

    def __len__(self) -> int:
        return len(self._now)


async def forever(
    what: str,
    work: Callable[[], Awaitable[object]],
    interval: Interval,
    logger: logging.Logger,
    *,
    wait_first: bool = False,
    reported: tuple[type[Exception], ...] = (),
) -> None:
    """Run `work` every `interval` seconds (a number, or a function asked before each wait) until
    cancelled. A round that fails is logged as "<what> failed" with its traceback, and the next round
    goes on: background work must not stop at its first error. Exceptions in `reported` are not
    logged here (whoever raised them logged them already, e.g. an outage of the store, once).
    `wait_first`: wait before the first round (whoever starts the loop did that round itself)."""
    if wait_first:
        await asyncio.sleep(_seconds(interval))
    while True:
        try:
            await work()
        except reported:
            pass
        except Exception:  # noqa: BLE001 - the next round retries
            logger.exception("%s failed", what)
        await asyncio.sleep(_seconds(interval))


def _seconds(interval: Interval) -> float:
    return interval() if callable(interval) else interval

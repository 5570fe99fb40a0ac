"""Locks across processes on one host: a flock on a file, waited for off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from pathlib import Path
from typing import AsyncIterator


@contextlib.asynccontextmanager
async def file_lock(path: Path, *, remove: bool = False, wait: bool = True) -> AsyncIterator[bool]:
    """An exclusive lock across processes (flock on `path`), waited for off the event loop; the
    kernel drops it when its process dies. Yields whether it is held: always, unless `wait` is
    False and another holds it (then it is not waited for).

    With `remove`, the file is unlinked while still held (a lock per commit must not pile up): a
    process already waiting on it re-checks what the lock guards once it gets it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if wait:
            await asyncio.get_running_loop().run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
            held = True
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                held = False
    except BaseException:
        os.close(fd)
        raise
    try:
        yield held
    finally:
        if held:
            if remove:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_locked(path: Path) -> bool:
    """Whether a `file_lock` on `path` is held now (by any process, this one included); never waits."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)

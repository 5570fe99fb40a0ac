"""Build processes: each in its own process group, recorded on disk, so a relay killed with -9 leaves
nothing running that the next start cannot find and stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

logger = logging.getLogger("relay.processes")

RECORDS_DIR = "running"
LOG_TAIL_LINES = 40
LOG_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class Record:
    """What a running build leaves on disk: its process group and what to remove if its relay dies."""

    relay_pid: int
    relay_started: int  # the relay process's start time (clock ticks since boot): a reused pid differs
    pgid: int
    pgid_started: int
    paths: tuple[str, ...]  # directories the build owns (its staging directory, a cold worktree)


def started(pid: int) -> int | None:
    """A live process's start time in clock ticks since boot; None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields follow the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(pid: int, start: int | None = None) -> bool:
    now = started(pid)
    return now is not None and (start is None or now == start)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def stop_process(pid: int, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; returns once it is gone (or a zombie)."""
    start = started(pid)
    if start is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid, start) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid, start):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not alive(pid, start):
                break
            time.sleep(0.05)


class Records:
    """The records of this relay's running builds, in `<work_dir>/running/`."""

    def __init__(self, work_dir: Path) -> None:
        self.directory = work_dir / RECORDS_DIR
        self.relay_pid = os.getpid()

    @contextlib.contextmanager
    def running(self, pgid: int, paths: tuple[Path, ...]) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        relay_pid = os.getpid()  # a forked worker records itself, not its parent
        record = Record(
            relay_pid=relay_pid,
            relay_started=started(relay_pid) or 0,
            pgid=pgid,
            pgid_started=started(pgid) or 0,
            paths=tuple(str(p) for p in paths),
        )
        path = self.directory / f"{relay_pid}-{pgid}-{secrets.token_hex(4)}.json"
        path.write_text(json.dumps(asdict(record)))
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    def clean_up_after_dead_relays(self) -> list[Record]:
        """Stop the builds of relays that are gone and remove what they owned; return their records.

        A record of a live relay (another worker, or another relay sharing the work directory) stays.
        """
        cleaned = []
        try:
            entries = sorted(self.directory.iterdir())
        except OSError:
            return []
        for entry in entries:
            try:
                data = json.loads(entry.read_text())
                record = Record(**{**data, "paths": tuple(data["paths"])})
            except (OSError, ValueError, TypeError, KeyError):
                logger.warning("removing unreadable build record %s", entry)
                entry.unlink(missing_ok=True)
                continue
            if alive(record.relay_pid, record.relay_started):
                continue
            if alive(record.pgid, record.pgid_started):
                logger.warning("stopping build process group %d left running by a relay that died", record.pgid)
                kill_group(record.pgid)
            for owned in record.paths:
                shutil.rmtree(owned, ignore_errors=True)
            entry.unlink(missing_ok=True)
            cleaned.append(record)
        return cleaned


async def run_logged(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    timeout: float,
    records: Records,
    owned: tuple[Path, ...],
    on_start: Callable[[int], None] | None = None,
) -> int | None:
    """Run a shell command in its own process group, output to `log_path`; None if it timed out.

    On timeout or cancellation the whole group is killed (the build tool's children too).
    `on_start` is told the group's id once the command runs.
    """
    with open(log_path, "wb") as log:
        process = await asyncio.create_subprocess_shell(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        with records.running(process.pid, owned):
            if on_start is not None:
                on_start(process.pid)
            try:
                return await asyncio.wait_for(process.wait(), timeout)
            except asyncio.TimeoutError:
                kill_group(process.pid)
                await process.wait()
                return None
            except asyncio.CancelledError:
                kill_group(process.pid)
                await process.wait()
                raise
            finally:
                # Whatever the command left in its group (a background child) goes with it.
                kill_group(process.pid)


def log_tail(log_path: Path, lines: int = LOG_TAIL_LINES, max_bytes: int = LOG_TAIL_BYTES) -> str:
    """The last lines of a build log, reading at most `max_bytes` from its end (logs can be huge)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read(max_bytes)
    except OSError:
        return "(no log)"
    text = data.decode(errors="replace").splitlines()
    if size > max_bytes:
        text = text[1:]  # the first line read is most likely cut
    return "--- last lines of the log ---\n" + "\n".join(text[-lines:])


async def log_tail_off_loop(log_path: Path) -> str:
    return await asyncio.get_running_loop().run_in_executor(None, log_tail, log_path)

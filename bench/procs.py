"""Processes of a benchmark run: timed commands, servers and pantsd, and stopping all of them."""
from __future__ import annotations

import atexit
import os
import re
import signal
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
PANTS = ROOT / "pants"
# Every process this run starts in the background, one pid a line: bench/run's trap stops what is left.
PID_FILE = OUT / "run" / "pids"


class BenchError(RuntimeError):
    """A benchmark step failed; the message says which command and shows the end of its output."""


@dataclass(frozen=True)
class Timed:
    """One timed command: wall seconds and the peak RSS of its process tree's largest process."""

    seconds: float
    max_rss_mb: float
    returncode: int
    output: str = field(repr=False)


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run_timed(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800,
    check: bool = True,
) -> Timed:
    """Run `argv` under /usr/bin/time -v; wall time is measured here, RSS comes from time(1).

    time(1) reports the largest RSS among the command and the children it waited for, which for
    `pants --no-pantsd` is the Pants process (engine included); with pantsd it is the thin client.
    """
    report = OUT / "run" / f"time-{os.getpid()}-{time.monotonic_ns()}.txt"
    report.parent.mkdir(parents=True, exist_ok=True)
    command = ["/usr/bin/time", "-v", "-o", str(report), *argv]
    start = time.perf_counter()
    result = subprocess.run(
        command, cwd=cwd, env=dict(env) if env is not None else None, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )
    seconds = time.perf_counter() - start
    text = report.read_text() if report.exists() else ""
    report.unlink(missing_ok=True)
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    rss = int(match.group(1)) / 1024 if match else float("nan")
    if check and result.returncode != 0:
        raise BenchError(
            f"`{' '.join(argv)}` in {cwd} exited with {result.returncode}:\n{tail(result.stdout)}"
        )
    return Timed(seconds, rss, result.returncode, result.stdout)


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """Median, min and max of repeated measurements."""
    clean = [v for v in values if v == v]  # drop NaN
    if not clean:
        return {"n": 0}
    return {"median": statistics.median(clean), "min": min(clean), "max": max(clean), "n": len(clean)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _record_pid(pid: int) -> None:
    PID_FILE.parent.mkdir(parents=True, exist_ok=True)
    with PID_FILE.open("a") as f:
        f.write(f"{pid}\n")


def stop_pid(pid: int, *, group: bool = False, grace: float = 10.0) -> None:
    """SIGTERM a process (or its process group), then SIGKILL it if it has not gone after `grace` s."""
    sender = os.killpg if group else os.kill
    try:
        sender(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
            if waited == pid:
                return
        except ChildProcessError:  # not our child: poll for its existence
            if not Path(f"/proc/{pid}").exists():
                return
        time.sleep(0.05)
    try:
        sender(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError, PermissionError):
        pass


class Server:
    """A background process in its own process group, stopped by `stop()` or at interpreter exit."""

    running: list["Server"] = []

    def __init__(self, name: str, argv: Sequence[str], *, cwd: Path, log: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log.open("ab")
        self.process = subprocess.Popen(
            self.argv, cwd=cwd, env=dict(env) if env is not None else None, stdout=self._log_file,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        _record_pid(self.process.pid)
        Server.running.append(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_http(self, url: str, timeout: float = 60.0, headers: Mapping[str, str] | None = None) -> None:
        """Wait until `url` answers (any HTTP status below 500), or fail with the server's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{tail(self.log.read_text())}")
            try:
                urllib.request.urlopen(urllib.request.Request(url, headers=dict(headers or {})), timeout=2)
                return
            except urllib.error.HTTPError as e:
                if e.code < 500:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(f"{self.name} did not answer {url} within {timeout} s:\n{tail(self.log.read_text())}")

    def rss_mb(self) -> float:
        return proc_rss_mb(self.pid)["rss"]

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_pid(self.pid, group=True)
        self._log_file.close()
        if self in Server.running:
            Server.running.remove(self)


def proc_rss_mb(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, in MB."""
    values = {"rss": float("nan"), "peak": float("nan")}
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return values
    for key, field_name in (("rss", "VmRSS"), ("peak", "VmHWM")):
        match = re.search(rf"^{field_name}:\s+(\d+) kB", status, re.MULTILINE)
        if match:
            values[key] = int(match.group(1)) / 1024
    return values


def pantsd_pids(build_root: Path) -> list[int]:
    """pids of the pantsd daemons of a build root (2.17 has no kill-pantsd: they live in .pids/)."""
    pids = []
    for pid_file in build_root.glob(".pids/*/pantsd/pid"):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if Path(f"/proc/{pid}").exists():
            pids.append(pid)
    return pids


_pantsd_roots: set[Path] = set()


def remember_pantsd(build_root: Path) -> None:
    """Note that runs in this build root may start pantsd, so stop_all() stops it."""
    _pantsd_roots.add(build_root)
    for pid in pantsd_pids(build_root):
        _record_pid(pid)


def stop_pantsd(build_root: Path) -> None:
    for pid in pantsd_pids(build_root):
        stop_pid(pid, grace=15.0)
    _pantsd_roots.discard(build_root)


def stop_all() -> None:
    """Stop every server and pantsd this run started (called on exit, error or signal)."""
    for server in list(Server.running):
        server.stop()
    for root in list(_pantsd_roots):
        stop_pantsd(root)


def _on_signal(signum: int, _frame: object) -> None:
    stop_all()
    raise SystemExit(128 + signum)


def install_cleanup() -> None:
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)


def pants_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for ./pants: this one minus an enclosing PEX/venv's, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PEX_") and k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env["EXPORT_DISTS_HOME"] = str(ROOT)
    env.update(extra or {})
    return env


def cache_env(cache: Path) -> dict[str, str]:
    """Pants' caches (store, named caches, workdir) inside `cache`: empty for a cold run."""
    return {
        "PANTS_LOCAL_STORE_DIR": str(cache / "lmdb_store"),
        "PANTS_NAMED_CACHES_DIR": str(cache / "named_caches"),
        "PANTS_WORKDIR": str(cache / "pants.d"),
    }

"""Hostile and careless clients against a real `relay serve` process: silent and slow connections,
too many of them, and running out of file descriptors."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from relay.testing import fake_sha, write_export

REPO_ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Relay:
    """`python -m relay serve` on 127.0.0.1, optionally with a lower file-descriptor limit."""

    def __init__(self, store: Path, log: Path, *args: str, max_files: int | None = None) -> None:
        self.port = _free_port()
        self.log = log

        def limit() -> None:
            if max_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))

        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "relay", "serve", "--store", str(store), "--host", "127.0.0.1",
                 "--port", str(self.port), "--shutdown-timeout", "2", "--no-access-log", *args],
                cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=out, preexec_fn=limit,
            )
        self.wait_healthy(30)

    def health(self, timeout: float = 2) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/health", timeout=timeout) as response:
            return int(response.status)

    def wait_healthy(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if self.health() == 200:
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the relay is not answering:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.1)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=20)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def relay_store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    store.mkdir()
    write_export(store, fake_sha(1), 1)
    return store


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for s in opened:
            s.close()


def _read_all(s: socket.socket) -> bytes:
    """Everything the relay sends until it closes the connection (bounded by the socket timeout)."""
    chunks = []
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_silent_and_slow_connections_time_out_and_their_number_is_capped(
    relay_store: Path, tmp_path: Path, sockets: list[socket.socket]
) -> None:
    relay = _Relay(relay_store, tmp_path / "relay.log", "--idle-timeout", "1", "--max-connections", "12")
    try:
        for n in range(10):
            s = relay.connect()
            sockets.append(s)
            if n % 2:
                s.sendall(b"GET /-/health HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
        # Beyond the cap: answered 503 at once and closed, not kept open.
        extra = [relay.connect() for _ in range(6)]
        sockets.extend(extra)
        refused = [_read_all(s) for s in extra]
        assert sum(r.startswith(b"HTTP/1.1 503 ") for r in refused) >= 4, refused
        # Silent and slow-header connections are closed by the relay (recv sees the end, not a timeout).
        for s in sockets[:10]:
            assert not _read_all(s).startswith(b"HTTP/1.1 200")
        # A kept-alive connection that goes idle is closed too, after its answer.
        idle = relay.connect()
        sockets.append(idle)
        idle.sendall(b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_all(idle).startswith(b"HTTP/1.1 200 ")
        relay.wait_healthy(10)
    finally:
        relay.stop()
    log = relay.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert log.count("connection limit") == 1, log[-3000:]


def test_running_out_of_file_descriptors_is_logged_once_per_interval(
    relay_store: Path, tmp_path: Path, sockets: list[socket.socket]
) -> None:
    # A cap above what the file-descriptor limit allows: accepting runs out of descriptors.
    relay = _Relay(
        relay_store, tmp_path / "relay.log", "--idle-timeout", "30", "--max-connections", "1000", max_files=64
    )
    try:
        for _ in range(80):
            sockets.append(relay.connect())
        # The relay retries accepting about once a second; give it a few tries.
        time.sleep(3.5)
        for s in sockets:
            s.close()
        sockets.clear()
        relay.wait_healthy(30)
    finally:
        relay.stop()
    log = relay.log.read_text()
    assert log.count("Too many open files") == 1, log[-5000:]
    assert "Traceback" not in log, log[-3000:]

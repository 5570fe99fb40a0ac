"""Hostile and careless clients against a real `relay serve` process: silent and slow connections,
too many of them, and running out of file descriptors."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from relay_testing.exports import fake_sha, write_export
from tests.relay_process import RelayProcess

@contextlib.contextmanager
def _relay(store: Path, log: Path, *args: str, max_files: int | None = None) -> Iterator[RelayProcess]:
    """`relay serve` (access log off), with at most `max_files` file descriptors if given."""
    relay = RelayProcess(store, "--no-access-log", *args, log=log, max_files=max_files)
    try:
        yield relay
    finally:
        relay.stop()


def _connect(relay: RelayProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", relay.port), timeout=20)


def _wait_healthy(relay: RelayProcess, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not _healthy(relay):
        if time.monotonic() > deadline:
            raise AssertionError(f"the relay is not answering:\n{relay.log.read_text()[-3000:]}")
        time.sleep(0.1)


def _healthy(relay: RelayProcess) -> bool:
    try:
        return relay.get("/-/health", timeout=2).status == 200
    except OSError:
        return False


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
    log = tmp_path / "relay.log"
    with _relay(relay_store, log, "--idle-timeout", "1", "--max-connections", "12") as relay:
        for n in range(10):
            s = _connect(relay)
            sockets.append(s)
            if n % 2:
                s.sendall(b"GET /-/health HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
        # Beyond the cap: answered 503 at once and closed, not kept open.
        extra = [_connect(relay) for _ in range(6)]
        sockets.extend(extra)
        refused = [_read_all(s) for s in extra]
        assert sum(r.startswith(b"HTTP/1.1 503 ") for r in refused) >= 4, refused
        # Silent and slow-header connections are closed by the relay (recv sees the end, not a timeout).
        for s in sockets[:10]:
            assert not _read_all(s).startswith(b"HTTP/1.1 200")
        # A kept-alive connection that goes idle is closed too, after its answer.
        idle = _connect(relay)
        sockets.append(idle)
        idle.sendall(b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_all(idle).startswith(b"HTTP/1.1 200 ")
        _wait_healthy(relay, 10)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert text.count("connection limit") == 1, text[-3000:]


def test_running_out_of_file_descriptors_is_logged_once_per_interval(
    relay_store: Path, tmp_path: Path, sockets: list[socket.socket]
) -> None:
    log = tmp_path / "relay.log"
    # A cap above what the file-descriptor limit allows: accepting runs out of descriptors.
    with _relay(relay_store, log, "--idle-timeout", "30", "--max-connections", "1000", max_files=64) as relay:
        for _ in range(80):
            sockets.append(_connect(relay))
        # The relay retries accepting about once a second; give it a few tries.
        time.sleep(3.5)
        for s in sockets:
            s.close()
        sockets.clear()
        _wait_healthy(relay, 30)
    text = log.read_text()
    assert text.count("Too many open files") == 1, text[-5000:]
    assert "Traceback" not in text, text[-3000:]

"""`serve --workers N`: one listening socket, N-1 forked workers beside the first process, watched.

A worker that dies (killed, out of memory, an uncaught error) stops the whole relay with a non-zero
status, so that its supervisor (systemd's Restart=, Kubernetes) starts it again whole: a relay left
serving with fewer workers than asked would go unnoticed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading

logger = logging.getLogger("relay")


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def fork(count: int) -> Workers:
    """Fork `count` worker processes. In the first process, the workers, watched from now on; in a
    worker, no workers (it serves and exits)."""
    children: list[int] = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            return Workers([])
        children.append(pid)
    return Workers(children)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


class Workers:
    """The forked workers of this process, each waited for on a thread of its own.

    Each thread waits for its own worker's pid only, never for any child: the builds' git and
    export processes are the event loop's to wait for.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.died: list[str] = []
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._watch, args=(pid,), name=f"relay-worker-{pid}", daemon=True) for pid in pids
        ]
        for thread in self._threads:
            thread.start()

    def _watch(self, pid: int) -> None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return
        if self._stopping:
            return
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            # Stopped as asked (SIGTERM to it, or to the whole group, which stops this process too).
            logger.info("worker process %d stopped", pid)
            return
        self.died.append(f"worker process {pid} {_how(status)}")
        logger.error("worker process %d %s: stopping the relay, for its supervisor to restart it", pid, _how(status))
        # As a stop from outside: in-flight requests finish, the other workers stop, the status is 1.
        os.kill(os.getpid(), signal.SIGTERM)

    def stop(self) -> None:
        """Stop the workers the way this process was stopped (gracefully), and wait for them."""
        self._stopping = True
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for thread in self._threads:
            thread.join()

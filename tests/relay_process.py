"""Servers on 127.0.0.1 for end-to-end tests: a real `python -m relay serve` process and a static index."""
from __future__ import annotations

import base64
import hashlib
import io
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Mapping, Sequence

from packaging.utils import canonicalize_name

import relay
from tests.venvs import clean_environment

# The directory holding the `relay` package: the checkout, or a Pants test sandbox.
RELAY_ROOT = Path(relay.__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


def fetch(url: str, *, accept: str | None = None, timeout: float = 60.0) -> Response:
    """GET `url` without following redirects; any status is returned, not raised."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return Response(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers), e.read())


def _limit_files(count: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


class RelayProcess:
    """`python -m relay serve --store STORE ARGS` on a free port of 127.0.0.1; stop() ends it."""

    def __init__(
        self,
        store: Path,
        *args: str,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        max_files: int | None = None,
        cwd: Path | None = None,
        pythonpath: Sequence[Path] = (),
    ) -> None:
        """`max_files`: the relay's file-descriptor limit (RLIMIT_NOFILE), to test running out;
        `pythonpath`: more import roots beside the relay's (e.g. the uv exporter it runs)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Standard output and error (the access log among them); beside the store unless given.
        self.log = log or (cwd or Path.cwd()) / store.parent / f"relay-{self.port}.log"
        # No PEX_* or PYTHONPATH of an enclosing sandbox: the relay (and the ./pants it may run in pull
        # mode) see a plain environment, plus the relay package itself.
        environment = {
            **clean_environment(), **(env or {}), "PYTHONPATH": os.pathsep.join(map(str, (RELAY_ROOT, *pythonpath)))
        }
        with open(self.log, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "relay", "serve", "--store", str(store), "--host", "127.0.0.1",
                 "--port", str(self.port), "--shutdown-timeout", "5", *args],
                env=environment, cwd=cwd or RELAY_ROOT, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                preexec_fn=None if max_files is None else partial(_limit_files, max_files),
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/-/health", timeout=1).read()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the relay did not start:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.05)

    def get(self, path: str, **kwargs: object) -> Response:
        return fetch(self.url + path, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class StaticIndex:
    """A PEP 503 index of wheels in a directory, served by http.server in a thread on 127.0.0.1.

    `add_wheel()` writes a wheel and `add_file()` takes an existing one; `publish()` writes
    `simple/` pages linking them. `requests` lists every path asked for.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "files").mkdir(parents=True, exist_ok=True)
        self.requests: list[str] = []
        seen = self.requests

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                seen.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def add_wheel(self, name: str, version: str, files: Mapping[str, str], requires: tuple[str, ...] = ()) -> Path:
        """A pure-Python wheel of `name` `version` holding `files` (path -> text)."""
        escaped = canonicalize_name(name).replace("-", "_")
        dist_info = f"{escaped}-{version}.dist-info"
        metadata = "".join(
            [f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"]
            + [f"Requires-Dist: {r}\n" for r in requires]
        )
        contents = {path: text.encode() for path, text in files.items()}
        contents[f"{dist_info}/METADATA"] = metadata.encode()
        contents[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        record = []
        for path, data in contents.items():
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        contents[f"{dist_info}/RECORD"] = ("\n".join(record + [f"{dist_info}/RECORD,,"]) + "\n").encode()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as wheel:
            for path in sorted(contents):
                wheel.writestr(path, contents[path])
        wheel_path = self.root / "files" / f"{escaped}-{version}-py3-none-any.whl"
        wheel_path.write_bytes(buffer.getvalue())
        return wheel_path

    def add_file(self, wheel: Path) -> Path:
        target = self.root / "files" / wheel.name
        target.write_bytes(wheel.read_bytes())
        return target

    def publish(self) -> None:
        projects: dict[str, list[Path]] = {}
        for wheel in sorted((self.root / "files").glob("*.whl")):
            projects.setdefault(canonicalize_name(wheel.name.split("-")[0]), []).append(wheel)
        simple = self.root / "simple"
        simple.mkdir(exist_ok=True)
        links = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects))
        (simple / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
        for project, wheels in projects.items():
            (simple / project).mkdir(exist_ok=True)
            anchors = "".join(
                f'<a href="../../files/{w.name}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">{w.name}</a>\n'
                for w in wheels
            )
            (simple / project / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{anchors}</body></html>\n")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


"""The index servers under test, all on 127.0.0.1 and all serving one export's wheels.

- the relay (`python -m relay serve --store`), with and without `--auth-file`;
- pypiserver (waitress, cached directory backend) over a directory of the same wheels;
- devpi-server with the wheels uploaded into an index `root/bench`;
- nginx serving the export's static `simple/` tree and wheels as files.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from procs import OUT, ROOT, BenchError, Server, free_port


@dataclass(frozen=True)
class Corpus:
    """One export (`store/<sha>/`) and the names the benchmarks ask for."""

    store: Path
    sha: str
    projects: tuple[str, ...]
    page_project: str  # the project whose page the load test requests
    wheel: str  # its wheel's file name
    install_name: str  # the dist the install benchmark installs (a 50-dist chain)
    install_count: int  # how many dists that install brings


@dataclass
class Index:
    """A running index server: where its pages and files are, and how to reach them."""

    name: str
    server: Server
    simple_url: str  # ends with /
    page_url: str
    wheel_url: str
    headers: dict[str, str] = field(default_factory=dict)
    access_log: Path | None = None
    json_pages: bool = True  # False: it answers HTML whatever the Accept header says


AUTH_USER = "bench"
AUTH_PASSWORD = "bench-password-0123"


def _python() -> str:
    return str(OUT / "venv" / "bin" / "python")


def _bin(name: str) -> str:
    return str(OUT / "venv" / "bin" / name)


def relay(corpus: Corpus, work: Path, *, auth: bool, workers: int = 1) -> Index:
    name = ("relay (auth)" if auth else "relay") + (f", {workers} workers" if workers > 1 else "")
    port = free_port()
    argv = [_python(), "-m", "relay", "serve", "--store", str(corpus.store), "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers)]
    headers: dict[str, str] = {}
    if auth:
        auth_file = work / f"relay-auth-{workers}"
        auth_file.unlink(missing_ok=True)
        subprocess.run([_python(), "-m", "relay", "passwd", str(auth_file), AUTH_USER, "--password-stdin"],
                       input=AUTH_PASSWORD, text=True, check=True, cwd=ROOT, capture_output=True)
        argv += ["--auth-file", str(auth_file)]
        token = base64.b64encode(f"{AUTH_USER}:{AUTH_PASSWORD}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    log = work / f"relay{'-auth' if auth else ''}-{workers}.log"
    log.unlink(missing_ok=True)
    server = Server(name, argv, cwd=ROOT, log=log, env={**os.environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    server.wait_http(f"{base}/-/health")
    return Index(name, server, f"{base}/main/simple/", f"{base}/main/simple/{corpus.page_project}/",
                 f"{base}/{corpus.sha}/{corpus.wheel}", headers, access_log=log)


def pypiserver(corpus: Corpus, work: Path) -> Index:
    packages = work / "pypiserver-packages"
    shutil.rmtree(packages, ignore_errors=True)
    packages.mkdir(parents=True)
    for wheel in (corpus.store / corpus.sha).glob("*.whl"):
        os.link(wheel, packages / wheel.name)
    port = free_port()
    server = Server("pypiserver", [_bin("pypi-server"), "run", "-p", str(port), "-i", "127.0.0.1",
                                   "--server", "auto", "--backend", "cached-dir", "--disable-fallback",
                                   "-a", ".", "-P", ".", "--hash-algo", "sha256", str(packages)],
                    cwd=work, log=work / "pypiserver.log")
    base = f"http://127.0.0.1:{port}"
    server.wait_http(f"{base}/simple/")
    return Index("pypiserver", server, f"{base}/simple/", f"{base}/simple/{corpus.page_project}/",
                 f"{base}/packages/{corpus.wheel}")


def devpi(corpus: Corpus, work: Path) -> Index:
    serverdir = work / "devpi-server"
    clientdir = work / "devpi-client"
    for path in (serverdir, clientdir):
        shutil.rmtree(path, ignore_errors=True)
    subprocess.run([_bin("devpi-init"), "--serverdir", str(serverdir), "--no-root-pypi"], check=True,
                   capture_output=True)
    port = free_port()
    server = Server("devpi-server", [_bin("devpi-server"), "--serverdir", str(serverdir), "--host", "127.0.0.1",
                                     "--port", str(port), "--offline-mode"],
                    cwd=work, log=work / "devpi.log")
    base = f"http://127.0.0.1:{port}"
    server.wait_http(f"{base}/+api", timeout=120)
    env = {**os.environ, "DEVPI_CLIENTDIR": str(clientdir)}

    def client(*args: str) -> None:
        result = subprocess.run([_bin("devpi"), *args], env=env, capture_output=True, text=True, cwd=work)
        if result.returncode != 0:
            raise BenchError(f"devpi {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")

    client("use", base)
    client("login", "root", "--password", "")
    client("index", "-c", "bench", "bases=", "volatile=False")
    client("use", "root/bench")
    upload = work / "devpi-upload"
    shutil.rmtree(upload, ignore_errors=True)
    upload.mkdir()
    for wheel in (corpus.store / corpus.sha).glob("*.whl"):
        os.link(wheel, upload / wheel.name)
    client("upload", "--from-dir", str(upload))
    simple = f"{base}/root/bench/+simple/"
    page = f"{simple}{corpus.page_project}/"
    html = urllib.request.urlopen(urllib.request.Request(page, headers={"Accept": "text/html"}), timeout=30).read().decode()
    match = re.search(r'href="([^"#]+' + re.escape(corpus.wheel) + ')', html)
    if not match:
        raise BenchError(f"devpi's page {page} has no link to {corpus.wheel}:\n{html[:1000]}")
    return Index("devpi-server", server, simple, page, urllib.request.urljoin(page, match.group(1)))


NGINX_CONF = """\
daemon off;
worker_processes auto;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log {work}/nginx-access.log;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path {work}/nginx-tmp/body;
  proxy_temp_path {work}/nginx-tmp/proxy;
  fastcgi_temp_path {work}/nginx-tmp/fastcgi;
  uwsgi_temp_path {work}/nginx-tmp/uwsgi;
  scgi_temp_path {work}/nginx-tmp/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    index index.html;
  }}
}}
"""


def nginx(corpus: Corpus, work: Path) -> Index:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    (work / "nginx-tmp").mkdir(parents=True, exist_ok=True)
    conf = work / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(work=work, port=port, root=corpus.store, user=user))
    server = Server("nginx", [binary, "-c", str(conf), "-e", str(work / "nginx-error.log")], cwd=work,
                    log=work / "nginx.log")
    base = f"http://127.0.0.1:{port}/{corpus.sha}"
    server.wait_http(f"{base}/simple/")
    return Index("nginx (static simple/)", server, f"{base}/simple/", f"{base}/simple/{corpus.page_project}/",
                 f"{base}/{corpus.wheel}", json_pages=False)


def load_corpus(store: Path, sha: str, install_name: str) -> Corpus:
    manifest = json.loads((store / sha / "manifest.json").read_text())
    dists = manifest["dists"]
    projects = tuple(d["project"] for d in dists)
    install_project = re.sub(r"[-_.]+", "-", install_name).lower()
    if install_project not in projects:
        raise BenchError(f"{install_name} is not in the export {store / sha}")
    # A mid-chain project: a typical page of one version, and a typical small wheel.
    chain = sorted(p for p in projects if "-chain-" in p)
    page = chain[len(chain) // 2] if chain else projects[len(projects) // 2]
    wheel = next(d["filename"] for d in dists if d["project"] == page)
    return Corpus(store, sha, projects, page, wheel, install_name, len(chain) or 1)

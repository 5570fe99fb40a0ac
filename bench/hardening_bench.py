"""The relay under mixed routes with hostile clients alongside (errors, RSS over time), and the
access log's cost per request: the relay's own line writer against logging's QueueHandler."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from procs import OUT, ROOT, BenchError, Server, free_port, proc_rss_mb, summarize
from serve_bench import parse_wrk

# Fixture exports (no Pants needed): relay_testing.exports writes real wheels, .metadata files and manifests.
sys.path.insert(0, str(ROOT))
from relay_testing.exports import fake_sha, write_export  # noqa: E402

QUEUE_LOG_LAUNCHER = """\
import logging, logging.handlers, queue, sys
from relay import cli
from relay.cli import serve
from relay.web.access_log import LOG_FORMAT

# relay serve with logging's standard way off the hot path: every record (access lines included) goes
# through a QueueHandler; a QueueListener thread formats and writes them.
def log_to_stderr(level):
    records = queue.SimpleQueue()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.handlers.QueueListener(records, handler).start()
    root = logging.getLogger()
    root.addHandler(logging.handlers.QueueHandler(records))
    root.setLevel(level)
    return None  # no handler for the access log to write to: its lines go through logging

serve.log_to_stderr = log_to_stderr
sys.exit(cli.main(sys.argv[1:]))
"""


@dataclass(frozen=True)
class HardeningSettings:
    exports: int
    duration_s: int
    rounds: int
    connections: int
    silent: int
    log_reps: int


def _store(work: Path, count: int) -> tuple[Path, str]:
    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    sha = ""
    for n in range(1, count + 1):
        sha = write_export(store, fake_sha(n), n, branches=("main",)).sha
    return store, sha


def _relay(name: str, store: Path, work: Path, *args: str, launcher: str | None = None) -> tuple[Server, str]:
    port = free_port()
    entry = ["-c", launcher] if launcher else ["-m", "relay"]
    argv = [sys.executable, *entry, "serve", "--store", str(store), "--host", "127.0.0.1", "--port", str(port), *args]
    server = Server(name, argv, cwd=ROOT, log=work / f"{name}.log", env={**os.environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    server.wait_http(f"{base}/-/health")
    return server, base


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, connections: int, duration: int, script: Path | None = None) -> dict[str, float]:
    wrk = shutil.which("wrk")
    if not wrk:
        raise BenchError("wrk is not installed: run bench/setup")
    argv = [wrk, "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script is not None:
        argv += ["-s", str(script)]
    result = subprocess.run([*argv, url], capture_output=True, text=True, timeout=duration + 60)
    if result.returncode != 0:
        raise BenchError(f"wrk against {url} failed:\n{result.stdout}\n{result.stderr}")
    parsed = parse_wrk(result.stdout)
    total = re.search(r"(\d+) requests in", result.stdout)
    parsed["requests"] = float(total.group(1)) if total else float("nan")
    return parsed


def _mixed_script(work: Path, sha: str) -> tuple[Path, list[str]]:
    wheel = next(p.name for p in (work / "store" / sha).glob("*.whl"))
    routes = [
        ("/main/simple/", "text/html"),
        ("/main/simple/monorepo-chain-a/", "application/vnd.pypi.simple.v1+json"),
        (f"/{sha}/simple/monorepo-tools/", "text/html"),
        (f"/{sha[:10]}/simple/monorepo-chain-b/", "application/vnd.pypi.simple.v1+json"),
        (f"/{sha}/{wheel}", "*/*"),
        (f"/{sha}/{wheel}.metadata", "*/*"),
        ("/main/constraints.txt", "*/*"),
        ("/-/health", "*/*"),
    ]
    lines = ["local routes = {"]
    for path, accept in routes:
        lines.append(f'  {{"{path.replace("+", "%2B")}", "{accept}"}},')
    lines += [
        "}",
        "local n = 0",
        "request = function()",
        "  n = n + 1",
        "  local route = routes[(n % #routes) + 1]",
        '  return wrk.format("GET", route[1], {["Accept"] = route[2], ["Accept-Encoding"] = "gzip"})',
        "end",
    ]
    script = work / "mixed.lua"
    script.write_text("\n".join(lines) + "\n")
    return script, [path for path, _ in routes]


class _Hostile:
    """Silent and slow-header connections opened and re-opened for as long as it runs."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.opened = 0
        self.closed_by_relay = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        held: list[socket.socket] = []
        while not self._stop.is_set():
            while len(held) < self.count:
                try:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                except OSError:
                    break
                if self.opened % 2:
                    s.sendall(b"GET /main/simple/ HTTP/1.1\r\nHost: x\r\n")  # never finished
                s.setblocking(False)
                held.append(s)
                self.opened += 1
            for s in list(held):
                try:
                    if s.recv(4096) == b"":
                        self.closed_by_relay += 1
                        held.remove(s)
                        s.close()
                except BlockingIOError:
                    pass
                except OSError:
                    held.remove(s)
                    s.close()
                    self.closed_by_relay += 1
            self._stop.wait(0.5)
        for s in held:
            s.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(settings: HardeningSettings, log) -> dict[str, object]:
    work = OUT / "hardening"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    store, sha = _store(work, settings.exports)
    log(f"hardening: {settings.exports} fixture exports in {store}")
    data: dict[str, object] = {"exports": settings.exports}

    # Mixed routes, with silent and slow-header clients alongside; RSS after every round.
    server, base = _relay("relay-mixed", store, work, "--idle-timeout", "5")
    script, routes = _mixed_script(work, sha)
    data["routes"] = routes
    try:
        _wrk(base + "/", settings.connections, 2, script)  # warm-up
        hostile = _Hostile(int(base.rsplit(":", 1)[1]), settings.silent)
        rounds = []
        try:
            for n in range(settings.rounds):
                result = _wrk(base + "/", settings.connections, settings.duration_s, script)
                result["rss_mb"] = proc_rss_mb(server.pid)["rss"]
                rounds.append(result)
                log(f"hardening: mixed round {n + 1}: {result['rps']:.0f} req/s, errors "
                    f"{result['non_2xx'] + result['socket_errors']:.0f}, RSS {result['rss_mb']:.1f} MB")
        finally:
            hostile.stop()
        data["mixed"] = {
            "rounds": rounds,
            "hostile_opened": hostile.opened,
            "hostile_closed_by_relay": hostile.closed_by_relay,
        }
        server_log = (work / "relay-mixed.log").read_text(errors="replace")
        data["mixed"]["tracebacks_in_log"] = server_log.count("Traceback")  # type: ignore[index]
    finally:
        server.stop()

    # The access log: the relay's writer against QueueHandler + QueueListener, interleaved rounds.
    page = "/main/simple/monorepo-chain-a/"
    variants = {"relay line writer": None, "QueueHandler + QueueListener": QUEUE_LOG_LAUNCHER}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    servers = {name: _relay(f"relay-log-{n}", store, work, launcher=launcher)
               for n, (name, launcher) in enumerate(variants.items())}
    try:
        for srv, url in servers.values():
            _wrk(url + page, settings.connections, 2)  # warm-up
        for rep in range(settings.log_reps):
            for name, (srv, url) in servers.items():
                before = _cpu_seconds(srv.pid)
                result = _wrk(url + page, settings.connections, settings.duration_s)
                result["cpu_us_per_request"] = (_cpu_seconds(srv.pid) - before) / result["requests"] * 1e6
                runs[name].append(result)
                log(f"hardening: access log {name}: {result['rps']:.0f} req/s, "
                    f"{result['cpu_us_per_request']:.1f} us CPU a request")
    finally:
        for srv, _ in servers.values():
            srv.stop()
    data["access_log"] = {
        name: {
            "rps": summarize([r["rps"] for r in results]),
            "cpu_us_per_request": summarize([r["cpu_us_per_request"] for r in results]),
            "errors": sum(r["non_2xx"] + r["socket_errors"] for r in results),
        }
        for name, results in runs.items()
    }
    data["access_log_page"] = page
    return data


def report_lines(part: dict[str, object]) -> list[str]:
    """The section of docs/benchmarks.md for this part."""
    s = part["settings"]  # type: ignore[index]
    d = part["data"]  # type: ignore[index]
    mixed = d["mixed"]
    rows = []
    for n, r in enumerate(mixed["rounds"], 1):
        rows.append(f"| {n} | {r['rps']:,.0f} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | "
                    f"{int(r['requests']):,} | {int(r['non_2xx'])} | {int(r['socket_errors'])} | {r['rss_mb']:.1f} MB |")
    log_rows = []
    for name, r in d["access_log"].items():
        log_rows.append(f"| {name} | {r['rps']['median']:,.0f} ({r['rps']['min']:,.0f}-{r['rps']['max']:,.0f}) | "
                        f"{r['cpu_us_per_request']['median']:.1f} us ({r['cpu_us_per_request']['min']:.1f}-"
                        f"{r['cpu_us_per_request']['max']:.1f}) | {int(r['errors'])} |")
    return [
        "## Relay under mixed load and hostile clients",
        "",
        f"Started {part['started']}. {d['exports']} fixture exports on `main` (`relay_testing.exports`), one relay "
        f"process (`--idle-timeout 5`, access log on). `wrk -t2 -c{s['connections']} -d{s['duration_s']}s` "
        f"cycling through {len(d['routes'])} routes ({', '.join('`' + r + '`' for r in d['routes'])}), "
        f"{s['rounds']} rounds back to back, while {s['silent']} connections at a time stay silent or "
        "send half a request head (re-opened as the relay closes them). Errors are wrk's non-2xx/3xx "
        "answers and socket errors; RSS is the relay's after each round.",
        "",
        "| round | req/s | p50 | p99 | requests | non-2xx/3xx | socket errors | relay RSS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"Hostile connections opened: {mixed['hostile_opened']:,}, closed by the relay: "
        f"{mixed['hostile_closed_by_relay']:,}; tracebacks in the relay's log: {mixed['tracebacks_in_log']}.",
        "",
        f"The access log's cost: `{d['access_log_page']}` (HTML) under `wrk -t2 -c{s['connections']} "
        f"-d{s['duration_s']}s`, {s['log_reps']} interleaved rounds per variant; CPU is the relay process's "
        "own (user + system, all threads) divided by the requests served, which the other load on the "
        "machine does not inflate the way it does req/s.",
        "",
        "| access log | req/s | relay CPU a request | errors |",
        "| --- | --- | --- | --- |",
        *log_rows,
        "",
    ]

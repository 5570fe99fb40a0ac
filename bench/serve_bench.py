"""Load tests of the index servers with wrk: project pages (HTML, JSON) and a wheel download."""
from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from procs import BenchError, summarize
from servers import Index

ACCEPT = {
    "page (HTML)": "text/html",
    "page (JSON)": "application/vnd.pypi.simple.v1+json",
    "wheel": "*/*",
}


@dataclass(frozen=True)
class LoadSettings:
    threads: int
    connections: int
    duration_s: int
    reps: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise BenchError(f"cannot read wrk's latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s, latency percentiles (ms) and error counts from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not rps:
        raise BenchError(f"wrk printed no Requests/sec:\n{output}")
    result = {"rps": float(rps.group(1))}
    for percentile in ("50", "99"):
        match = re.search(rf"^\s+{percentile}%\s+(\S+)", output, re.MULTILINE)
        result[f"p{percentile}_ms"] = _ms(match.group(1)) if match else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result["non_2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    result["socket_errors"] = float(sum(int(g) for g in errors.groups())) if errors else 0.0
    return result


def probe(url: str, headers: dict[str, str]) -> tuple[int, str, int]:
    """Status, content type and size of one request, to check what the load test will hit."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), len(response.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), 0


def load_test(index: Index, settings: LoadSettings, log) -> list[dict[str, object]]:
    wrk = shutil.which("wrk")
    if not wrk:
        raise BenchError("wrk is not installed: run bench/setup")
    rows = []
    for endpoint, accept in ACCEPT.items():
        url = index.wheel_url if endpoint == "wheel" else index.page_url
        headers = {"Accept": accept, **index.headers}
        status, content_type, size = probe(url, headers)
        if status != 200:
            raise BenchError(f"{index.name}: {url} answered {status} to Accept: {accept}")
        if endpoint == "page (JSON)" and "json" not in content_type:
            rows.append({"server": index.name, "endpoint": endpoint, "skipped": f"answers {content_type or 'no type'}"})
            continue
        runs = []
        # One unmeasured second first: every worker process has warmed its caches (pages, files, and
        # with auth the one slow password check per process) before the measured runs.
        for rep in range(-1, settings.reps):
            duration = 1 if rep < 0 else settings.duration_s
            argv = [wrk, f"-t{settings.threads}", f"-c{settings.connections}", f"-d{duration}s",
                    "--latency", "--timeout", "10s"]
            for key, value in headers.items():
                argv += ["-H", f"{key}: {value}"]
            result = subprocess.run([*argv, url], capture_output=True, text=True, timeout=duration + 60)
            if rep < 0:
                continue
            if result.returncode != 0:
                raise BenchError(f"wrk against {url} failed:\n{result.stdout}\n{result.stderr}")
            runs.append(parse_wrk(result.stdout))
            time.sleep(0.5)
        row = {
            "server": index.name,
            "endpoint": endpoint,
            "content_type": content_type.split(";")[0],
            "bytes": size,
            "rps": summarize([r["rps"] for r in runs]),
            "p50_ms": summarize([r["p50_ms"] for r in runs]),
            "p99_ms": summarize([r["p99_ms"] for r in runs]),
            "errors": sum(r["non_2xx"] + r["socket_errors"] for r in runs),
        }
        log(f"{index.name} {endpoint}: {row['rps']['median']:.0f} req/s, p99 {row['p99_ms']['median']:.1f} ms")
        rows.append(row)
    rows.append({"server": index.name, "endpoint": "server RSS after load (MB)", "rss_mb": index.server.rss_mb()})
    return rows

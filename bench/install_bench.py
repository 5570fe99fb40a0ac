"""Installs of a deep first-party chain into a fresh venv with pip and uv, from each index server."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from procs import OUT, BenchError, summarize, tail
from servers import AUTH_PASSWORD, AUTH_USER, Corpus, Index

_LOG_LINE = re.compile(r'method=(\S+) path="?([^"\s]+)"? status=(\d+)')


def _with_credentials(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{AUTH_USER}:{AUTH_PASSWORD}@{parts.netloc}"))


def _client_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    # Only 127.0.0.1 is involved: no configuration file, no cache, no upstream index.
    env.update({"PIP_CONFIG_FILE": "/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_NO_CONFIG": "1"})
    return env


def _fresh_venv(python: str, path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([python, "-m", "venv", "--without-pip", str(path)], check=True, capture_output=True)


def _access_counts(log: Path, start: int) -> dict[str, int]:
    """Requests for wheels and for their .metadata in the relay's access log, after byte `start`."""
    with log.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    counts = {"whl": 0, "metadata": 0, "pages": 0}
    for match in _LOG_LINE.finditer(text):
        path = match.group(2)
        if path.endswith(".whl.metadata"):
            counts["metadata"] += 1
        elif path.endswith(".whl"):
            counts["whl"] += 1
        elif "/simple/" in path:
            counts["pages"] += 1
    return counts


def _install_once(index: Index, corpus: Corpus, client: str, python: str) -> tuple[float, dict[str, int] | None]:
    """One install into a fresh venv: its seconds, and the relay's request counts when it has a log."""
    work = OUT / "install"
    work.mkdir(parents=True, exist_ok=True)
    venv = work / "venv"
    url = _with_credentials(index.simple_url) if index.headers else index.simple_url
    _fresh_venv(python, venv)
    if client == "pip":
        argv = [str(OUT / "venv" / "bin" / "pip"), "--python", str(venv / "bin" / "python"), "install",
                "--no-cache-dir", "--quiet", "--index-url", url, corpus.install_name]
    else:
        argv = [str(OUT / "venv" / "bin" / "uv"), "pip", "install", "--no-cache", "--quiet",
                "--python", str(venv / "bin" / "python"), "--index-url", url, corpus.install_name]
    log_start = index.access_log.stat().st_size if index.access_log else 0
    start = time.perf_counter()
    result = subprocess.run(argv, env=_client_env(), capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise BenchError(f"{client} install from {index.name} failed:\n{tail(result.stdout)}\n{tail(result.stderr)}")
    installed = len(list((venv / "lib").glob("python*/site-packages/monorepo_*.dist-info")))
    shutil.rmtree(venv, ignore_errors=True)
    if installed != corpus.install_count:
        raise BenchError(f"{client} from {index.name} installed {installed} monorepo dists, "
                         f"expected {corpus.install_count}")
    counts = None
    if index.access_log:
        time.sleep(0.3)  # let the relay flush its access log
        counts = _access_counts(index.access_log, log_start)
    return seconds, counts


def install_rounds(indexes: list[Index], corpus: Corpus, reps: int, python: str, log) -> list[dict[str, object]]:
    """`reps` rounds; each round installs once from every index with every client, in turn.

    Interleaved rather than all runs of one server in a row, so that a slow minute of this shared
    machine falls on every server alike, not on whichever was measured then.
    """
    clients = ("pip", "uv")
    times: dict[tuple[str, str], list[float]] = {}
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for _ in range(reps):
        for client in clients:
            for index in indexes:
                seconds, seen = _install_once(index, corpus, client, python)
                times.setdefault((index.name, client), []).append(seconds)
                if seen is not None:
                    counts[(index.name, client)] = seen
    rows: list[dict[str, object]] = []
    for index in indexes:
        for client in clients:
            key = (index.name, client)
            row: dict[str, object] = {"server": index.name, "client": client, "dists": corpus.install_count,
                                      "seconds": summarize(times[key])}
            if key in counts:
                row["requests"] = counts[key]
                # A wheel fetched beyond one per installed dist was fetched only to read its metadata.
                row["metadata_only_wheel_downloads"] = max(0, counts[key]["whl"] - corpus.install_count)
            log(f"{client} install of {corpus.install_count} dists from {index.name}: "
                f"{row['seconds']['median']:.2f} s" + (f", requests {counts[key]}" if key in counts else ""))
            rows.append(row)
    return rows

"""The pages for people: how long a dist's page, a ref's page and a search take, beside the simple API.

A synthetic repository of `commits` commits and an export of `dists` dists for each (format 2: each
commit changes a few dists and their dependents, the others keep their versions), served by one relay
with `--repo` (git for refs, commit dates and messages) and no builds. Each route is asked once cold
(a dist's page reads its wheel's zip directory and `git log` once; a ref's page reads every wheel's
directory once) and then `reps` times warm, one request at a time. The simple API's project page is
the yardstick: the pages are not on its path, and it is measured with the same client.
"""
from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

from procs import OUT, ROOT, Server, free_port, summarize

sys.path.insert(0, str(ROOT))
from relay_testing.exports import DistSpec, write_export  # noqa: E402

NS = "monorepo.gen"


def _dists(count: int, changed: dict[int, int]) -> list[DistSpec]:
    """`count` dists; d<i> requires d<i // 2> (a tree), ships 3 modules; `changed[i]` marks its content."""
    specs = []
    for i in range(count):
        requires = (f"{NS}.d{i // 2:04d}",) if i else ()
        files = tuple((f"gen/d{i:04d}/{m}.py", f"# {changed.get(i, 0)}\n") for m in ("core", "stats", "io"))
        specs.append(DistSpec(f"{NS}.d{i:04d}", requires=requires, third_party=("attrs>=22.2",), files=files))
    return specs


def _git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    return subprocess.run(["git", "-C", str(repo), *identity, *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _closure_of(i: int, count: int) -> set[int]:
    """i and every dist that requires it, directly or not (its descendants in the tree)."""
    found, todo = set(), [i]
    while todo:
        j = todo.pop()
        found.add(j)
        todo += [k for k in (2 * j, 2 * j + 1) if 0 < k < count]
    return found


def _write(work: Path, dists: int, commits: int) -> tuple[Path, Path, str]:
    repo, store = work / "repo", work / "store"
    store.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    rng = random.Random(7)
    changed: dict[int, int] = {}
    origins: dict[str, tuple[str, int]] = {}
    for n in range(1, commits + 1):
        leaves = [rng.randrange(dists) for _ in range(3)] if n > 1 else list(range(dists))
        (repo / "log").write_text(f"{n}\n")
        _git(repo, "add", "log")
        _git(repo, "commit", "-q", "-m", f"gen: change d{leaves[0]:04d} and {len(leaves) - 1} more (commit {n})")
        sha = _git(repo, "rev-parse", "HEAD")
        moved = set().union(*(_closure_of(i, dists) for i in leaves))
        for i in moved:
            changed[i] = n
            origins[f"{NS}.d{i:04d}"] = (sha, n)
        write_export(store, sha, n, _dists(dists, changed), origins=dict(origins))
    return repo, store, sha


def _get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "text/html"}), timeout=60) as r:
        r.read()
    return time.perf_counter() - start


def run(dists: int, commits: int, reps: int, log: Callable[[str], None]) -> dict[str, Any]:
    work = OUT / "pages"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log(f"pages: writing {commits} exports of {dists} dists")
    repo, store, tip = _write(work, dists, commits)
    port = free_port()
    argv = [sys.executable, "-m", "relay", "serve", "--store", str(store), "--repo", str(repo), "--no-build",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--upstream", "https://pypi.org/simple"]
    server = Server("relay", argv, cwd=ROOT, log=work / "relay.log", env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    base = f"http://127.0.0.1:{port}"
    rows: list[dict[str, Any]] = []
    try:
        server.wait_http(f"{base}/-/health")
        middle = f"monorepo-gen-d{dists // 2:04d}"
        routes = [
            ("simple API project page (HTML)", f"/main/simple/{middle}/"),
            ("ref page", "/main/"),
            ("ref page, search a module name", f"/main/?q=gen.d{dists // 2:04d}.stats"),
            ("ref page, search `stats` (every dist)", "/main/?q=stats"),
            ("dist page", f"/main/-/{middle}/"),
            ("dist page at a commit", f"/{tip}/-/monorepo-gen-d0001/"),
        ]
        for name, path in routes:
            cold = _get(base + path)
            warm = summarize([_get(base + path) * 1000 for _ in range(reps)])
            rows.append({"route": name, "path": path, "cold_ms": cold * 1000, "warm_ms": warm})
            log(f"pages: {name}: cold {cold * 1000:.0f} ms, warm median {warm.get('median', 0):.1f} ms")
    finally:
        server.stop()
    return {"dists": dists, "commits": commits, "reps": reps, "rows": rows}


def section(payload: dict[str, Any], fmt: Callable[..., str], table: Callable[..., str]) -> list[str]:
    d = payload["data"]
    rows = [[r["route"], f"`{r['path'][:48]}`", f"{r['cold_ms']:.0f} ms", fmt(r["warm_ms"], "ms", 1)] for r in d["rows"]]
    return [
        "## Pages for people",
        "",
        f"Started {payload['started']}. One relay (`--repo`, `--no-build`) over {d['commits']} exports of "
        f"{d['dists']} dists each (`bench/pages_bench.py`: each commit changes three dists and their "
        "dependents; every dist ships three modules), one request at a time from one client: each route "
        f"once cold, then {d['reps']} times warm. A ref's first page reads every wheel's zip directory "
        "(for search by module name; kept by sha256 after), a dist's first page its own wheel, its "
        "dependents' and one `git log` for its versions' commits. Rendered pages are kept until the "
        "store's exports change, so a warm request is a lookup. The simple API's page is the "
        "yardstick: the pages are not on its path.",
        "",
        table(["route", "path", "cold", "warm (median, min-max)"], rows),
        "",
    ]

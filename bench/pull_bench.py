"""Pull mode: how long the relay takes to serve commits it has never exported, warm vs cold builder;
branch page latency while the branch's tip builds; commit-to-served with a followed branch; the warm
builder's memory after many builds."""
from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generate_monorepo import Shape, edit_and_commit, generate
from procs import OUT, PANTS, ROOT, BenchError, Server, cache_env, free_port, pants_env, proc_rss_mb, summarize

sys.path.insert(0, str(ROOT))

# The builders' work directories (worktrees, build locks) outside the checkout, whose tests glob it.
WORK_DIRS = Path(tempfile.gettempdir()) / "export-dists-bench-pull"

# The generated monorepo has no ./pants of its own: this checkout's bootstrap finds the build root.
# The core's place on Pants' pythonpath comes from the generated repository's .pants.rc, which git
# ignores, so a builder's worktree has none: the command says it (and drops the relay's PYTHONPATH).
EXPORT_PREFIX = f"env -u PYTHONPATH \"PANTS_PYTHONPATH=+['{ROOT}/core']\""
COMMANDS = {
    "warm": f"{EXPORT_PREFIX} {PANTS} export-dists --export-dists-output-dir={{output_dir}} ::",
    "cold": f"{EXPORT_PREFIX} {PANTS} --no-pantsd export-dists --export-dists-output-dir={{output_dir}} ::",
}


@dataclass(frozen=True)
class PullSettings:
    targets: int = 1000
    leaf_commits: int = 3  # one-leaf commits after the first, per builder
    followed_commits: int = 3  # commits timed from commit to served on a followed branch
    rss_builds: int = 20  # warm builds before the builder's memory is read


def _get(url: str, timeout: float) -> tuple[float, dict[str, str]]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        response.read()
        if response.status != 200:
            raise BenchError(f"{url} answered {response.status}")
        return time.perf_counter() - start, dict(response.headers)


def relay_health(base: str, timeout: float = 30) -> dict[str, Any]:
    """The relay's /-/health document."""
    with urllib.request.urlopen(f"{base}/-/health", timeout=timeout) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def relay_in_pull_mode(python: str, work: Path, name: str, repo: Path, builder: str, *extra: str,
                       build_timeout: int = 1800) -> tuple[Server, str]:
    """A relay serving `repo` in pull mode with `builder` (COMMANDS), its Pants caches empty."""
    port = free_port()
    env = pants_env(cache_env(work / f"pants-cache-{name}"))  # empty: the first build is cold
    env["PYTHONPATH"] = str(ROOT)
    server = Server(
        f"relay (pull mode, {name})",
        [python, "-m", "relay", "serve", "--store", str(work / f"store-{name}"), "--repo", str(repo),
         "--host", "127.0.0.1", "--port", str(port), "--builder", builder, "--export-command", COMMANDS[builder],
         "--work-dir", str(WORK_DIRS / f"work-{name}"), "--build-timeout", str(build_timeout), *extra],
        cwd=ROOT, log=work / f"relay-{name}.log", env=env,
    )
    base = f"http://127.0.0.1:{port}"
    server.wait_http(f"{base}/-/health")
    return server, base


def _pantsd_rss_mb(work: Path, name: str) -> float | None:
    for pid_file in (WORK_DIRS / f"work-{name}").glob("warm-*/worktree/.pids/*/pantsd/pid"):
        try:
            return round(proc_rss_mb(int(pid_file.read_text().strip()))["rss"])
        except (OSError, ValueError, KeyError):
            continue
    return None


def _commits(repo: Path, leaf: str, builder: str, count: int) -> list[str]:
    return [edit_and_commit(repo, leaf, f"{builder}_{n}_{time.monotonic_ns()}") for n in range(count)]


def run(settings: PullSettings, python: str, log) -> dict[str, object]:
    work = OUT / "pull"
    for directory in (work, WORK_DIRS):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    generated = generate(work / "monorepo", Shape(targets=settings.targets))
    repo, first = generated.path, generated.sha
    results: dict[str, object] = {"targets": settings.targets, "settings": vars(settings)}

    # 1. A first commit, then one-leaf commits, each asked for by sha: cold vs warm builder.
    for builder in ("cold", "warm"):
        server, base = relay_in_pull_mode(python, work, builder, repo, builder, "--default-ref", "none")
        try:
            seconds = [_get(f"{base}/{first}/simple/", timeout=1800)[0]]
            log(f"pull mode {builder}: first commit {seconds[0]:.1f} s")
            for sha in _commits(repo, generated.leaf_file, builder, settings.leaf_commits):
                seconds.append(_get(f"{base}/{sha}/simple/", timeout=1800)[0])
                log(f"pull mode {builder}: one-leaf commit {seconds[-1]:.1f} s")
            results[builder] = {"first_commit_s": round(seconds[0], 2), "leaf_commits_s": [round(s, 2) for s in seconds[1:]]}
        finally:
            server.stop()

    # 2. A followed branch (main, the default ref): commit, then poll its page until it serves the
    #    commit. Pages answered meanwhile (from the previous commit) give the latency while the tip builds.
    server, base = relay_in_pull_mode(python, work, "followed", repo, "warm", "--default-ref", "main", "--refresh-interval", "1")
    try:
        # The branch has no export yet: this first request waits for its tip (and starts the daemon).
        head = _get(f"{base}/main/simple/", timeout=1800)[1]["X-Relay-Commit"]
        to_served: list[float] = []
        latencies: list[float] = []
        rss: dict[int, float | None] = {}
        builds = 1
        rss[1] = _pantsd_rss_mb(work, "followed")
        total = max(settings.rss_builds - 1, settings.followed_commits)  # the first build was the tip's
        for n in range(total):
            sha = edit_and_commit(repo, generated.leaf_file, f"followed_{n}_{time.monotonic_ns()}")
            committed = time.perf_counter()
            for _ in range(36000):
                seconds, headers = _get(f"{base}/main/simple/", timeout=60)
                if headers["X-Relay-Commit"] == sha:
                    break
                if headers.get("X-Relay-Building") == sha:
                    latencies.append(seconds)
                time.sleep(0.05)
            else:
                raise BenchError(f"main never served {sha}")
            builds += 1
            if n < settings.followed_commits:
                to_served.append(time.perf_counter() - committed)
                log(f"pull mode followed: commit to served {to_served[-1]:.1f} s")
            if builds in (5, 10, 20) or n == total - 1:
                rss[builds] = _pantsd_rss_mb(work, "followed")
            head = sha
        health = relay_health(base, timeout=10)
        results["followed"] = {
            "commit_to_served_s": summarize(to_served),
            "branch_page_while_building_ms": {
                "n": len(latencies),
                "p50": round(statistics.median(latencies) * 1000, 1) if latencies else None,
                "p99": round(_percentile(latencies, 0.99) * 1000, 1) if latencies else None,
            },
            "pantsd_rss_mb_after_builds": rss,
            "builds": builds,
            "health": health,
            "last": head,
        }
    finally:
        server.stop()
    return results


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

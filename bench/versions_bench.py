"""Versions by content (issue 10): incremental export against Pants' floor on a repository with a long
history, the history walk alone, cold export cost of both version schemes, store bytes after commits."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from generate_monorepo import GeneratedRepo, Shape, edit_and_commit, fast_import_history, generate, git
from procs import OUT, PANTS, BenchError, cache_env, pants_env, pantsd_pids, remember_pantsd, run_timed, stop_pantsd, summarize


@dataclass(frozen=True)
class VersionSettings:
    targets: int
    history: int  # synthetic commits before the measured ones
    commits: int  # one-leaf commits exported by both schemes (store bytes; timed alternately)
    floor_reps: int  # one-leaf commits timed with `dependencies ::`
    shape: Shape


def add_history(repo: GeneratedRepo, commits: int, log: Callable[[str], None]) -> None:
    """`commits` first-parent commits on main, each editing one module of a target picked in turn
    (a fixed stride over all targets), written with one `git fast-import`."""
    files = [f"{t.directory}/m0.py" for t in repo.targets]
    seconds = fast_import_history(repo, files, commits)
    log(f"added {commits} commits of history in {seconds:.1f} s")


def store_bytes(out: Path) -> dict[str, int]:
    """Bytes of every export in `out`: on disk (a hard-linked file once) and as listed (each link)."""
    seen: dict[tuple[int, int], int] = {}
    listed = 0
    for dirpath, _, filenames in os.walk(out):
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            seen[(st.st_dev, st.st_ino)] = st.st_size
            listed += st.st_size
    return {"disk": sum(seen.values()), "listed": listed, "exports": len([p for p in out.iterdir() if not p.name.startswith(".")])}


def _walk_seconds(repo: Path) -> float:
    argv = ["git", "-C", str(repo), "log", "--first-parent", "--diff-merges=first-parent", "--no-renames",
            "--name-only", "--relative", "-z", "--format=%x1e%H%x1f%ct%x1f%cI", "HEAD", "--"]
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def run(settings: VersionSettings, log: Callable[[str], None]) -> dict[str, object]:
    shape = Shape(**{**settings.shape.__dict__, "targets": settings.targets})
    dest = OUT / "repos" / f"versions-{settings.targets}"
    if dest.exists():
        shutil.rmtree(dest)
    repo = generate(dest, shape)
    add_history(repo, settings.history, log)
    result: dict[str, object] = {"targets": settings.targets, "history": settings.history,
                                 "load_at_start": round(os.getloadavg()[0], 1)}
    result["history_walk_s"] = summarize([_walk_seconds(repo.path) for _ in range(3)])
    log(f"git log over {settings.history} commits: {result['history_walk_s']}")

    work = OUT / "versions"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    outs = {"content": work / "out-content", "commit": work / "out-commit"}

    def export_args(scheme: str) -> list[str]:
        return ["export-dists", f"--export-dists-version-scheme={scheme}", f"--export-dists-output-dir={outs[scheme]}", "::"]

    # Cold, both schemes, no pantsd, empty caches, on the same commit (the end of the history).
    for scheme in ("content", "commit"):
        cache = work / f"cold-{scheme}"
        cold_out = work / f"cold-out-{scheme}"
        args = ["export-dists", f"--export-dists-version-scheme={scheme}", f"--export-dists-output-dir={cold_out}", "::"]
        try:
            timed = run_timed([str(PANTS), "--no-pantsd", *args], cwd=repo.path, env=pants_env(cache_env(cache)))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        result[f"cold_{scheme}_s"] = timed.seconds
        result[f"cold_{scheme}_rss_mb"] = timed.max_rss_mb
        log(f"cold export, {scheme} scheme: {timed.seconds:.1f} s")
        shutil.rmtree(cold_out, ignore_errors=True)

    cache = work / "pantsd-cache"
    env = pants_env(cache_env(cache))
    remember_pantsd(repo.path)
    timings: dict[str, list[float]] = {"content": [], "commit": [], "dependencies": []}
    try:
        # Warm the daemon with both schemes on the same commit.
        for scheme in ("content", "commit"):
            run_timed([str(PANTS), *export_args(scheme)], cwd=repo.path, env=env)
            remember_pantsd(repo.path)
        pids = pantsd_pids(repo.path)
        if len(pids) != 1:
            raise BenchError(f"expected one pantsd in {repo.path}, found {pids}")
        for n in range(settings.commits):
            edit_and_commit(repo.path, repo.leaf_file, f"{int(time.time() * 1000)}_{n}")
            # Each commit is exported by both schemes (the stores' bytes); the first of the two is
            # timed, alternately, so neither gains from the other's inference of this commit.
            order = ("content", "commit") if n % 2 == 0 else ("commit", "content")
            for i, scheme in enumerate(order):
                timed = run_timed([str(PANTS), *export_args(scheme)], cwd=repo.path, env=env)
                if i == 0:
                    timings[scheme].append(timed.seconds)
                if scheme == "content":
                    summary = [line for line in timed.output.splitlines() if line.startswith("export-dists:")]
                    result["last_summary"] = summary[-1] if summary else ""
        for n in range(settings.floor_reps):
            edit_and_commit(repo.path, repo.leaf_file, f"{int(time.time() * 1000)}_floor_{n}")
            timings["dependencies"].append(
                run_timed([str(PANTS), "dependencies", "::"], cwd=repo.path, env=env).seconds
            )
        if pantsd_pids(repo.path) != pids:
            raise BenchError(f"pantsd of {repo.path} restarted during the runs: the timings are not warm")
    finally:
        stop_pantsd(repo.path)
        shutil.rmtree(cache, ignore_errors=True)
    for key, values in timings.items():
        result[f"incremental_{key}_s"] = summarize(values)
        log(f"incremental {key}: " + ", ".join(f"{v:.2f}" for v in values) + " s")
    result["load_at_end"] = round(os.getloadavg()[0], 1)
    result["store"] = {scheme: store_bytes(out) for scheme, out in outs.items()}
    log(f"store bytes: {result['store']}")
    shutil.rmtree(work, ignore_errors=True)
    return result

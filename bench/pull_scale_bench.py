"""Pull mode at scale (issue 24, item 3), against its floor in the same run.

Two parts, each on its own generated monorepo:

- **builds at `targets`** (default 10,000): the floor first, an incremental export with pantsd in
  the repository itself (its first export, then `leaf_commits` one-leaf commits, each exported);
  then a pull-mode relay with the warm builder (its own empty caches) asked for the first commit by
  sha (the first build: worktree, daemon start, export, publish), then for `leaf_commits` one-leaf
  commits by sha: the seconds a client waits. Goal: one-leaf pull <= 2x the one-leaf export.
- **a followed branch over `followed_builds` builds at `recycle_targets`** (default 1,000), with
  `--builder-max-builds recycle_every`: commit, then poll main's page until it serves the commit
  (commit to served, every build); the serving daemon's RSS, builds and replaced daemons from
  `/-/health` after each build. The daemon is replaced in the background every `recycle_every`
  builds: the builds right after a replacement show whether any client waited for it.

- **replaced** (only when asked: `--pullscale-parts replaced`), at `recycle_targets`: the first client
  build on a daemon warmed in the background, and the builds after it.

Every Pants process tree of the floor is watched against `memory_limit_mb` (scale_bench.run_watched).
"""
from __future__ import annotations

import datetime
import os
import shutil
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from generate_monorepo import Shape, edit_and_commit, generate
from procs import OUT, PANTS, BenchError, cache_env, pants_env, proc_rss_mb, remember_pantsd, stop_pantsd, pantsd_pids, summarize
from pull_bench import WORK_DIRS, _get, relay_health, relay_in_pull_mode
from scale_bench import _checked, run_watched

from relay.building.memory import host_available  # the relay's own reader (pull_bench put the repository on sys.path)


@dataclass(frozen=True)
class PullScaleSettings:
    targets: int = 10000
    leaf_commits: int = 3
    pantsd_max_memory: str = "14GiB"  # the builder's --builder-max-memory and the floor's pantsd limit
    memory_limit_mb: int = 16000  # a floor Pants process tree above this is stopped
    recycle_targets: int = 1000
    followed_builds: int = 50
    recycle_every: int = 20


def _builds_at_scale(settings: PullScaleSettings, log: Callable[[str], None]) -> dict[str, object]:
    work = OUT / "pull-scale"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    generated = generate(work / "monorepo", Shape(targets=settings.targets))
    repo = generated.path
    log(f"pull at scale: generated {settings.targets} targets in {time.monotonic() - started:.0f} s")
    result: dict[str, object] = {"targets": settings.targets, "load_at_start": round(os.getloadavg()[0], 1)}

    # The floor: incremental export with pantsd in the repository itself.
    env = pants_env({**cache_env(work / "floor-cache"), "PANTS_PANTSD_MAX_MEMORY_USAGE": settings.pantsd_max_memory})
    out = work / "floor-out"
    export = [str(PANTS), "export-dists", f"--export-dists-output-dir={out}", "::"]
    remember_pantsd(repo)
    floor: list[float] = []
    try:
        first = _checked(run_watched(export, cwd=repo, env=env, limit_mb=settings.memory_limit_mb), "first export with pantsd")
        remember_pantsd(repo)
        result["floor_first_export_s"] = round(first.seconds, 1)
        log(f"pull at scale: floor first export with pantsd {first.seconds:.1f} s")
        for n in range(settings.leaf_commits):
            edit_and_commit(repo, generated.leaf_file, f"floor_{n}_{time.monotonic_ns()}")
            timed = _checked(run_watched(export, cwd=repo, env=env, limit_mb=settings.memory_limit_mb), "one-leaf export")
            floor.append(timed.seconds)
            log(f"pull at scale: floor one-leaf export {timed.seconds:.1f} s")
        pids = pantsd_pids(repo)
        result["floor_pantsd_rss_mb"] = round(proc_rss_mb(pids[0])["rss"]) if pids else None
    finally:
        stop_pantsd(repo)
        shutil.rmtree(out, ignore_errors=True)
    result["floor_one_leaf_export_s"] = [round(s, 2) for s in floor]

    # Pull mode: the warm builder, asked by sha; a leaf commit each time.
    server, base = relay_in_pull_mode(sys.executable, work, "scale", repo, "warm", "--default-ref", "none",
                                      "--builder-max-memory", settings.pantsd_max_memory, build_timeout=3600)
    pulls: list[float] = []
    try:
        sha = generated.sha
        seconds = _get(f"{base}/{sha}/simple/", timeout=3600)[0]
        result["pull_first_build_s"] = round(seconds, 1)
        log(f"pull at scale: first build {seconds:.1f} s")
        for n in range(settings.leaf_commits):
            sha = edit_and_commit(repo, generated.leaf_file, f"pull_{n}_{time.monotonic_ns()}")
            pulls.append(_get(f"{base}/{sha}/simple/", timeout=3600)[0])
            log(f"pull at scale: one-leaf pull build {pulls[-1]:.1f} s")
        builders = relay_health(base).get("builders")
        result["pull_builders"] = builders
    finally:
        server.stop()
    result["pull_one_leaf_s"] = [round(s, 2) for s in pulls]
    if floor and pulls:
        result["pull_over_floor"] = round(statistics.median(pulls) / statistics.median(floor), 2)
    result["load_at_end"] = round(os.getloadavg()[0], 1)
    return result


class DaemonMemory:
    """Samples, once a second, the resident memory of every Pants daemon under a warm builder's home
    (the serving one and, during a warm-up, its replacement) and the host's MemAvailable; `take()`
    returns the peaks since the last take: what a host must have room for."""

    def __init__(self, home: Path, interval: float = 1.0) -> None:
        self.home = home
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reset()
        self._thread = threading.Thread(target=self._run, name="daemon-memory", daemon=True)

    def _reset(self) -> None:
        self.peak_total_mb = 0.0
        self.most_daemons = 0
        self.least_available_mb: float | None = None

    def sample(self) -> None:
        total, daemons = 0.0, 0
        for tree in self.home.glob("warm-*/worktree*"):
            for pid in pantsd_pids(tree):
                rss = proc_rss_mb(pid)["rss"]
                if rss == rss:  # not NaN: still alive
                    total += rss
                    daemons += 1
        host = host_available()
        available = None if host is None else host / 2**20
        with self._lock:
            self.peak_total_mb = max(self.peak_total_mb, total)
            self.most_daemons = max(self.most_daemons, daemons)
            if available is not None:
                least = self.least_available_mb
                self.least_available_mb = available if least is None else min(least, available)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> "DaemonMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def take(self) -> dict[str, float | int | None]:
        self.sample()
        with self._lock:
            peaks = {"daemons_peak_mb": round(self.peak_total_mb), "daemons_most": self.most_daemons,
                     "host_available_min_mb": None if self.least_available_mb is None else round(self.least_available_mb)}
            self._reset()
        return peaks


def _until_main_serves(base: str, sha: str) -> float:
    """Poll main's page every 50 ms until it serves `sha`: the seconds from now."""
    started = time.perf_counter()
    for _ in range(72000):
        if _get(f"{base}/main/simple/", timeout=60)[1]["X-Relay-Commit"] == sha:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise BenchError(f"main never served {sha}")


def _followed_with_recycles(settings: PullScaleSettings, log: Callable[[str], None]) -> dict[str, object]:
    work = OUT / "pull-recycle"
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(WORK_DIRS / "work-recycle", ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    generated = generate(work / "monorepo", Shape(targets=settings.recycle_targets))
    repo = generated.path
    log(f"pull followed: generated {settings.recycle_targets} targets in {time.monotonic() - started:.0f} s")
    server, base = relay_in_pull_mode(sys.executable, work, "recycle", repo, "warm", "--default-ref", "main",
                                      "--refresh-interval", "1", "--builder-max-builds", str(settings.recycle_every),
                                      "--builder-max-memory", settings.pantsd_max_memory, build_timeout=3600)
    builds: list[dict[str, object]] = []
    first: dict[str, object] = {}
    memory = DaemonMemory(WORK_DIRS / "work-recycle")
    try:
        with memory:
            seconds_first = _get(f"{base}/main/simple/", timeout=3600)[0]  # the tip's first build (starts the daemon)
            first = {"first_build_s": round(seconds_first, 1), **memory.take()}
            log(f"pull followed: first build {seconds_first:.1f} s, {first}")
            for n in range(settings.followed_builds):
                before = relay_health(base)["builders"][0]  # type: ignore[index]
                sha = edit_and_commit(repo, generated.leaf_file, f"followed_{n}_{time.monotonic_ns()}")
                served = _until_main_serves(base, sha)
                after = relay_health(base)["builders"][0]  # type: ignore[index]
                row = {
                    "n": n + 2, "commit_to_served_s": round(served, 2),
                    "rss_mb": round(after["rss"] / 2**20) if after.get("rss") else None,  # type: ignore[operator,union-attr]
                    "builds": after["builds"], "recycles": after["recycles"], "restarts": after["restarts"],
                    "warming_before": before["warming"], "warming_after": after["warming"],
                    **memory.take(),
                }
                builds.append(row)
                log(f"pull followed #{n + 2}: {served:.1f} s, pantsd {row['rss_mb']} MB (daemons {row['daemons_most']}, "
                    f"{row['daemons_peak_mb']} MB at most; host available {row['host_available_min_mb']} MB at least), "
                    f"recycles {row['recycles']}, warming {before['warming']}->{after['warming']}")
    finally:
        server.stop()
    seconds = [float(b["commit_to_served_s"]) for b in builds]  # type: ignore[arg-type]
    during = [float(b["commit_to_served_s"]) for b in builds if b["warming_before"]]  # type: ignore[arg-type]
    quiet = [float(b["commit_to_served_s"]) for b in builds if not b["warming_before"]]  # type: ignore[arg-type]
    return {
        "targets": settings.recycle_targets, "recycle_every": settings.recycle_every,
        "max_memory": settings.pantsd_max_memory, "first": first, "builds": builds,
        "commit_to_served_s": summarize(seconds),
        "commit_to_served_during_warm_up_s": summarize(during) if during else None,
        "commit_to_served_otherwise_s": summarize(quiet) if quiet else None,
        "restarts_in_builds": builds[-1]["restarts"] if builds else None,
        "recycles": builds[-1]["recycles"] if builds else None,
        "load_at_end": round(os.getloadavg()[0], 1),
    }


def _first_build_on_a_replacement(settings: PullScaleSettings, log: Callable[[str], None]) -> dict[str, object]:
    """The first client build on a daemon warmed in the background, against the daemon's own first
    edit (Pants' slow re-validation) and a build after it. A relay following `main` with
    `--builder-max-builds 1`: a one-leaf commit so the tip has a parent, the tip's first build
    (due at once: the warm-up starts), nothing asked until the replacement took over (its warm-up
    undisturbed), then one-leaf commits, each until main serves it: the first on the new daemon,
    then the ones after it (each makes the next warm-up due; a build stops it, as in real use)."""
    work = OUT / "pull-replaced"
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(WORK_DIRS / "work-replaced", ignore_errors=True)
    work.mkdir(parents=True)
    generated = generate(work / "monorepo", Shape(targets=settings.recycle_targets))
    repo = generated.path
    edit_and_commit(repo, generated.leaf_file, f"replaced_parent_{time.monotonic_ns()}")
    server, base = relay_in_pull_mode(sys.executable, work, "replaced", repo, "warm", "--default-ref", "main",
                                      "--refresh-interval", "1", "--builder-max-builds", "1",
                                      "--builder-max-memory", settings.pantsd_max_memory, build_timeout=3600)
    result: dict[str, object] = {"targets": settings.recycle_targets, "load_at_start": round(os.getloadavg()[0], 1)}
    memory = DaemonMemory(WORK_DIRS / "work-replaced")
    try:
        with memory:
            result["first_build_s"] = round(_get(f"{base}/main/simple/", timeout=3600)[0], 1)
            log(f"pull replaced: first build {result['first_build_s']} s")
            waited = time.perf_counter()
            for _ in range(36000):
                builder = relay_health(base)["builders"][0]
                if builder["recycles"] >= 1 and not builder["warming"]:
                    break
                time.sleep(0.1)
            else:
                raise BenchError("the daemon was never replaced")
            result["warm_up_s"] = round(time.perf_counter() - waited, 1)
            result["warm_up_memory"] = memory.take()
            log(f"pull replaced: replaced in the background after {result['warm_up_s']} s, {result['warm_up_memory']}")
            builds: list[dict[str, object]] = []
            for n in range(3):
                sha = edit_and_commit(repo, generated.leaf_file, f"replaced_{n}_{time.monotonic_ns()}")
                served = _until_main_serves(base, sha)
                after = relay_health(base)["builders"][0]
                builds.append({"commit_to_served_s": round(served, 2),
                               "recycles": after["recycles"], "restarts": after["restarts"], **memory.take()})
                log(f"pull replaced: build {n + 1} on the replacement: {builds[-1]}")
            result["builds"] = builds
    finally:
        server.stop()
    result["load_at_end"] = round(os.getloadavg()[0], 1)
    return result


def run(settings: PullScaleSettings, log: Callable[[str], None], parts: tuple[str, ...] = ("builds", "followed")) -> dict[str, object]:
    for directory in (WORK_DIRS,):
        directory.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {"settings": vars(settings)}
    for part, measure in (("builds", _builds_at_scale), ("followed", _followed_with_recycles),
                          ("replaced", _first_build_on_a_replacement)):
        if part in parts:
            started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
            key = part if part == "builds" else f"{part}_{settings.recycle_targets}"
            result[key] = {"started": f"Started {started}", **measure(settings, log)}
    return result


# The report (docs/benchmarks.md): the targets and a section.

def targets(data: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    builds = data.get("builds")
    if builds and builds.get("pull_one_leaf_s") and builds.get("floor_one_leaf_export_s"):
        pull, floor = statistics.median(builds["pull_one_leaf_s"]), statistics.median(builds["floor_one_leaf_export_s"])
        ratio = pull / floor
        rows.append([f"pull mode at {builds['targets']:,} targets: one-leaf commit with the warm builder <= 2x the "
                     "incremental export with pantsd (same run)",
                     f"{pull:.1f} s vs {floor:.1f} s = {ratio:.2f}x (first build {builds['pull_first_build_s']:.0f} s)",
                     "**met**" if ratio <= 2 else "**missed**"])
    for replaced in _replaced_runs(data):
        first = float(replaced["builds"][0]["commit_to_served_s"])
        same_size = [f for f in _followed_runs(data) if f["targets"] == replaced["targets"]]
        median = float(same_size[-1]["commit_to_served_s"]["median"]) if same_size else None
        verdict = "no followed run of this size to compare" if median is None else (
            "**met**" if first <= 2 * median and replaced["builds"][-1]["restarts"] == 0 else "**missed**")
        rows.append([f"pull mode, {replaced['targets']:,} targets: the first client build on a daemon replaced in the "
                     "background (its warm-up ran the daemon's first edit) within 2x the followed builds' median",
                     f"{first:.1f} s"
                     + (f" = {first / median:.2f}x the median {median:.1f} s" if median else "")
                     + ", then " + ", ".join(f"{b['commit_to_served_s']:.1f}" for b in replaced["builds"][1:])
                     + f" s; restarts in a build: {replaced['builds'][-1]['restarts']}",
                     verdict])
    for followed in _followed_runs(data):
        rows_ = followed["builds"]
        rss = [r["rss_mb"] for r in rows_ if r.get("rss_mb")]
        last = rows_[-1]
        # The first build on a daemon replaced in the background: a client waits for it.
        firsts = [float(r["commit_to_served_s"]) for r in rows_ if r["builds"] == 1 and r["recycles"] >= 1]
        typical = float(followed["commit_to_served_s"]["median"])
        slow_first = [f for f in firsts if f > 2 * typical]
        rows.append([f"pull mode, {followed['targets']:,} targets: the warm builder over {len(rows_) + 1} builds "
                     "(memory; a daemon replacement never in a client's wait)",
                     f"serving pantsd {min(rss):,}-{max(rss):,} MB; daemons replaced in the background: "
                     f"{last['recycles']}, restarts in a build: {last['restarts']}; commit to served median "
                     f"{followed['commit_to_served_s']['median']:.1f} s (max {followed['commit_to_served_s']['max']:.1f} s); "
                     "the first build on a replaced daemon: " + (", ".join(f"{f:.1f} s" for f in firsts) or "none"),
                     "**met**" if last["restarts"] == 0 and last["recycles"] > 0 and not slow_first
                     else "**missed**" + (" (a client waited for the new daemon's first edit)" if slow_first else "")])
    return rows


def _replaced_runs(data: dict[str, Any]) -> list[dict[str, Any]]:
    runs = [v for k, v in data.items() if k.startswith("replaced") and isinstance(v, dict) and v.get("builds")]
    return sorted(runs, key=lambda run: run["targets"])


def _followed_runs(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The followed runs with builds, smallest monorepo first."""
    runs = [v for k, v in data.items() if k.startswith("followed") and isinstance(v, dict) and v.get("builds")]
    return sorted(runs, key=lambda run: run["targets"])


def _builder_line(builders: Any) -> str:
    if not builders:
        return "?"
    b = builders[0]
    rss = f"{b['rss'] / 2**20:,.0f} MB" if b.get("rss") else "no daemon"
    return f"{rss} ({b['builds']} builds, {b['restarts']} restarts in a build, {b['recycles']} replaced in the background)"


def section(payload: dict[str, Any], fmt: Callable[..., str], table: Callable[..., str]) -> list[str]:
    data = payload["data"]
    out = ["## Pull mode at scale", ""]
    builds = data.get("builds")
    if builds:
        out += [
            f"{builds.get('started', payload['started'])} (`bench/pull_scale_bench.py`, part builds). One synthetic "
            f"monorepo of {builds['targets']:,} targets. The floor: `export-dists ::` with pantsd in the repository "
            "itself, after one-leaf commits. Then a pull-mode relay with the warm builder and its own empty caches, "
            "asked by sha for the first commit, then for one-leaf commits: the seconds a client waits (checkout, "
            "export, validation, publish). Load average "
            f"{builds['load_at_start']} at the start, {builds.get('load_at_end', '?')} at the end.",
            "",
            table(["what", "seconds"], [
                ["floor: first export with pantsd", f"{builds['floor_first_export_s']:.1f}"],
                ["floor: one-leaf export with pantsd", ", ".join(f"{s:.1f}" for s in builds["floor_one_leaf_export_s"])],
                ["pull: first build (cold caches, daemon start)", f"{builds['pull_first_build_s']:.1f}"],
                ["pull: one-leaf commit, warm builder", ", ".join(f"{s:.1f}" for s in builds["pull_one_leaf_s"])],
            ]),
            "",
            f"Pantsd after the floor's exports: {builds.get('floor_pantsd_rss_mb') or '?'} MB; the builder's after "
            f"its builds: {_builder_line(builds.get('pull_builders'))}.",
            "",
        ]
    for followed in _followed_runs(data):
        sampled = "daemons_peak_mb" in followed["builds"][0]
        rows = [[str(r["n"]), f"{r['commit_to_served_s']:.1f}", str(r["rss_mb"]), str(r["builds"]), str(r["recycles"]),
                 str(r["restarts"]), "yes" if r["warming_before"] else ""]
                + ([f"{r['daemons_most']}: {r['daemons_peak_mb']:,}", f"{r['host_available_min_mb']:,}"] if sampled else [])
                for r in followed["builds"]]
        first = followed.get("first") or {}
        memory_line = [
            f"Sampled once a second: every Pants daemon of the builder (the serving one and, during a warm-up, its "
            f"replacement) and the host's MemAvailable. The tip's first build took {first.get('first_build_s', '?')} s "
            f"(daemons {first.get('daemons_peak_mb', '?')} MB at most). Largest sum of the daemons in one build: "
            f"{max(r['daemons_peak_mb'] for r in followed['builds']):,} MB; least MemAvailable: "
            f"{min(r['host_available_min_mb'] for r in followed['builds'] if r['host_available_min_mb'] is not None):,} MB "
            f"(builder memory limit {followed.get('max_memory', '?')}; load average {followed.get('load_at_end', '?')} "
            "at the end).", ""] if sampled else []
        out += [
            f"{followed.get('started', payload['started'])} (part followed). A relay following `main` of a "
            f"{followed['targets']:,}-target monorepo, `--builder-max-builds {followed['recycle_every']}`: a one-leaf "
            "commit, then main's page polled until it serves that commit (commit to served; the next commit right "
            "after, no pause: the worst case for warm-ups), per build the serving daemon's RSS and the builder's "
            "counts from `/-/health`. \"warm-up ran\" marks builds that began while a replacement was warming "
            f"(they stop it, three times at most per warm-up). Commit to served: {fmt(followed['commit_to_served_s'], 's', 1)}; "
            f"while a warm-up ran {fmt(followed['commit_to_served_during_warm_up_s'], 's', 1)}, otherwise "
            f"{fmt(followed['commit_to_served_otherwise_s'], 's', 1)}.",
            "",
            table(["build", "commit to served (s)", "serving pantsd (MB)", "builds since its start", "replaced",
                   "restarts in a build", "warm-up ran"]
                  + (["daemons: their peak sum (MB)", "host MemAvailable, least (MB)"] if sampled else []), rows),
            "",
            *memory_line,
        ]
    for replaced in _replaced_runs(data):
        memory = replaced.get("warm_up_memory") or {}
        out += [
            f"{replaced.get('started', payload['started'])} (part replaced). A relay following `main` of a "
            f"{replaced['targets']:,}-target monorepo with `--builder-max-builds 1`: the tip's first build "
            f"({replaced['first_build_s']:.1f} s) makes a replacement due at once; nothing was asked until it took "
            f"over ({replaced['warm_up_s']:.1f} s later: its warm-up ran at the tip's parent, then at the tip; two "
            f"daemons {memory.get('daemons_peak_mb', '?')} MB at most, host MemAvailable "
            f"{memory.get('host_available_min_mb', '?')} MB at least). Then one-leaf commits, each until main "
            "served it (each build makes the next warm-up due, and stops it, as in use). Load average "
            f"{replaced['load_at_start']} at the start, {replaced['load_at_end']} at the end.",
            "",
            table(["build on the replacement", "commit to served (s)", "restarts in a build", "replaced so far"],
                  [[str(n), f"{b['commit_to_served_s']:.1f}", str(b["restarts"]), str(b["recycles"])]
                   for n, b in enumerate(replaced["builds"], 1)]),
            "",
        ]
    return out

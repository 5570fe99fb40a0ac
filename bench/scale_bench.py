"""Exports at scale (issue 24): one large generated monorepo, export-dists against Pants' own floor.

On one repository (bench/generate_monorepo.py, default 10,000 targets), in one run:

- **cold**: `./pants --no-pantsd dependencies ::` (the floor: start-up, BUILD files, dependency
  inference) and `./pants --no-pantsd export-dists ::`, each with empty caches: seconds and peak
  RSS (time(1)), the floor first;
- **with pantsd** (one daemon, `[GLOBAL].pantsd_max_memory_usage` raised so it survives the size):
  its first run, one `dependencies ::` to warm the floor's rules, then `exports` one-leaf commits
  (a constant added to a leaf module, committed), each exported; after every `floor_every`-th
  export one more one-leaf commit measured with `dependencies ::` instead. The daemon's RSS is read
  after the first export and after each export, and each export's own clock (the `[N s]` of its
  summary line: the goal rule alone, without Pants' per-run work before and after it);
- **profiled**: `profile_exports` more one-leaf exports under py-spy (not timed for the rows).

Every Pants process tree is watched: one that goes above `memory_limit_mb` is stopped and recorded
as such (the machine is shared; `dependencies ::` took 7.6 GB at 3,000 targets).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from generate_monorepo import GeneratedRepo, Shape, edit_and_commit, generate
from procs import OUT, PANTS, ROOT, BenchError, cache_env, pants_env, pantsd_pids, proc_rss_mb, remember_pantsd, stop_pantsd, summarize
from profile_summary import summarize as summarize_profile

EXPORT_RATE = 20


@dataclass(frozen=True)
class ScaleSettings:
    targets: int
    exports: int  # one-leaf commits exported with pantsd up
    floor_every: int  # a floor commit after every this many exports
    profile_exports: int
    memory_limit_mb: int  # a Pants process tree above this is stopped
    pantsd_max_memory: str  # [GLOBAL].pantsd_max_memory_usage for the daemon runs
    shape: Shape
    py_spy: str | None = None
    floor_goal: str = "dependencies"  # Pants' own goal over `::` the daemon runs are compared with
    skip_cold: bool = False
    profile_rate: int = EXPORT_RATE  # py-spy's samples a second during the profiled exports
    profile_idle: bool = False  # py-spy --idle: waits (for the GIL, a lock, a file) sampled too


@dataclass(frozen=True)
class Run:
    seconds: float
    max_rss_mb: float  # time(1)'s: the Pants process with --no-pantsd, the client with pantsd
    returncode: int
    output: str
    over_limit: bool


def _group_rss_mb(pgid: int) -> float:
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rpartition(")")[2].split()[2]) != pgid:
                continue
            total += int(Path(f"/proc/{entry}/statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_watched(argv: list[str], *, cwd: Path, env: dict[str, str], limit_mb: int, timeout: float = 3600) -> Run:
    """`argv` under time(1) in its own process group, stopped if the group's RSS passes `limit_mb`."""
    report = OUT / "run" / f"time-{os.getpid()}-{time.monotonic_ns()}.txt"
    report.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    process = subprocess.Popen(["/usr/bin/time", "-v", "-o", str(report), *argv], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    over = threading.Event()

    def watch() -> None:
        while process.poll() is None:
            if _group_rss_mb(process.pid) > limit_mb:
                over.set()
                os.killpg(process.pid, signal.SIGKILL)
                return
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    seconds = time.perf_counter() - start
    watcher.join(timeout=5)
    text = report.read_text() if report.exists() else ""
    report.unlink(missing_ok=True)
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    rss = int(match.group(1)) / 1024 if match else float("nan")
    return Run(seconds, rss, process.returncode, output, over.is_set())


def _checked(run: Run, what: str) -> Run:
    if run.returncode != 0 and not run.over_limit:
        raise BenchError(f"{what} exited with {run.returncode}:\n" + "\n".join(run.output.splitlines()[-30:]))
    return run


def _summary_line(output: str) -> str:
    return next((line for line in reversed(output.splitlines()) if line.startswith("export-dists:")), "")


def _timings(output: str) -> dict[str, float]:
    """The export's own timing lines (debug, see the env above): planning (the engine's and the plan
    rule's), the plan rule's body alone, the write after planning, staging on its thread."""
    found: dict[str, float] = {}
    for key, pattern in (("planning", r"timings: planning ([\d.]+) s"), ("write", r"then the write ([\d.]+) s"),
                         ("staging", r"staged ahead in ([\d.]+) s"), ("staging_waited", r"waited for ([\d.]+) s"),
                         ("plan_rule", r"timings: the plan rule ([\d.]+) s")):
        match = re.search(pattern, output)
        if match:
            found[key] = float(match.group(1))
    return found


def _plan_rule_line(output: str) -> str:
    match = re.search(r"export-dists timings: the plan rule .*", output)
    return match.group(0) if match else ""


def _plans_lines(output: str) -> str:
    """What the export said of the plans it kept from the export before (export.py, replan.py)."""
    return "; ".join(m.group(1) for m in re.finditer(r"export-dists plans: (.*)", output))


def _goal_seconds(summary: str) -> float | None:
    """The goal's own clock, `[12.3s]` in its summary line: from the goal rule's start to its write,
    without Pants' per-run work before and after it (start-up, options, BUILD files), which the
    floor pays too."""
    match = re.search(r"\[(\d+(?:\.\d+)?)s\]", summary)
    return float(match.group(1)) if match else None


def run(settings: ScaleSettings, log: Callable[[str], None]) -> dict[str, object]:
    shape = Shape(**{**settings.shape.__dict__, "targets": settings.targets})
    dest = OUT / "repos" / f"scale-{settings.targets}"
    if dest.exists():
        shutil.rmtree(dest)
    started = time.monotonic()
    repo: GeneratedRepo = generate(dest, shape)
    log(f"generated {settings.targets} targets in {time.monotonic() - started:.0f} s")
    work = OUT / "scale"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = work / "out"
    export_args = ["export-dists", f"--export-dists-output-dir={out}", "::"]
    floor_args = [settings.floor_goal, "::"]
    result: dict[str, object] = {"targets": settings.targets, "load_at_start": os.getloadavg()[0],
                                 "memory_limit_mb": settings.memory_limit_mb, "floor_goal": settings.floor_goal}

    # Cold, no pantsd, empty caches: the floor first, then the export.
    cold_runs = () if settings.skip_cold else (
        ("dependencies", ["dependencies", "::"]),
        ("export", ["export-dists", f"--export-dists-output-dir={work / 'cold-out'}", "::"]),
    )
    for kind, args in cold_runs:
        cache = work / f"cold-{kind}"
        try:
            timed = _checked(run_watched([str(PANTS), "--no-pantsd", *args], cwd=repo.path,
                                         env=pants_env(cache_env(cache)), limit_mb=settings.memory_limit_mb),
                             f"cold {kind}")
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        result[f"cold_{kind}"] = {"seconds": timed.seconds, "max_rss_mb": timed.max_rss_mb, "over_limit": timed.over_limit,
                                  "load": os.getloadavg()[0]}
        if kind == "export":
            result["cold_summary"] = _summary_line(timed.output)
        log(f"cold {kind}: {timed.seconds:.1f} s, peak {timed.max_rss_mb:.0f} MB"
            + (" (stopped: over the memory limit)" if timed.over_limit else ""))
    shutil.rmtree(work / "cold-out", ignore_errors=True)

    cache = work / "pantsd-cache"
    env = pants_env({**cache_env(cache), "PANTS_PANTSD_MAX_MEMORY_USAGE": settings.pantsd_max_memory,
                     # The export's timing lines (goal.py, export.py); the same options for the floor's
                     # runs, or pantsd would restart between them.
                     "PANTS_LOG_LEVELS_BY_TARGET": json.dumps({"export_dists.goal": "debug", "export_dists.export": "debug"})})
    result["pantsd_max_memory_usage"] = settings.pantsd_max_memory
    remember_pantsd(repo.path)
    exports: list[float] = []
    goal_clock: list[float] = []
    timings: list[dict[str, float]] = []
    plan_rule_lines: list[str] = []
    plans_lines: list[str] = []
    floors: list[float] = []
    rss_after: dict[int, float] = {}
    try:
        first = _checked(run_watched([str(PANTS), *export_args], cwd=repo.path, env=env, limit_mb=settings.memory_limit_mb),
                         "first export with pantsd")
        remember_pantsd(repo.path)
        pids = pantsd_pids(repo.path)
        if len(pids) != 1:
            raise BenchError(f"expected one pantsd in {repo.path}, found {pids}")
        pantsd = pids[0]
        result["pantsd_first_s"] = first.seconds
        result["pantsd_rss_after_first_mb"] = proc_rss_mb(pantsd)["rss"]
        log(f"first export with pantsd: {first.seconds:.1f} s, pantsd {result['pantsd_rss_after_first_mb']:.0f} MB")
        if settings.floor_every:
            warm_floor = _checked(run_watched([str(PANTS), *floor_args], cwd=repo.path, env=env,
                                              limit_mb=settings.memory_limit_mb), f"first {settings.floor_goal} with pantsd")
            result["pantsd_first_floor_s"] = warm_floor.seconds
            result["pantsd_rss_after_floor_mb"] = proc_rss_mb(pantsd)["rss"]
            log(f"first {settings.floor_goal} with pantsd: {warm_floor.seconds:.1f} s, pantsd {result['pantsd_rss_after_floor_mb']:.0f} MB")
        for n in range(1, settings.exports + 1):
            edit_and_commit(repo.path, repo.leaf_file, f"scale_{n}_{time.time_ns()}")
            timed = _checked(run_watched([str(PANTS), *export_args], cwd=repo.path, env=env,
                                         limit_mb=settings.memory_limit_mb), f"export #{n}")
            exports.append(timed.seconds)
            rss_after[n] = proc_rss_mb(pantsd)["rss"]
            result["last_summary"] = _summary_line(timed.output)
            clock = _goal_seconds(result["last_summary"])
            if clock is not None:
                goal_clock.append(clock)
            timings.append(_timings(timed.output))
            plan_rule_lines.append(_plan_rule_line(timed.output))
            plans_lines.append(_plans_lines(timed.output))
            log(f"one-leaf export #{n}: {timed.seconds:.2f} s, pantsd {rss_after[n]:.0f} MB; {timings[-1]}; {plans_lines[-1]}")
            if settings.floor_every and n % settings.floor_every == 0:
                edit_and_commit(repo.path, repo.leaf_file, f"scale_floor_{n}_{time.time_ns()}")
                floor = _checked(run_watched([str(PANTS), *floor_args], cwd=repo.path, env=env,
                                             limit_mb=settings.memory_limit_mb), f"{settings.floor_goal} #{n}")
                floors.append(floor.seconds)
                log(f"one-leaf {settings.floor_goal} (floor): {floor.seconds:.2f} s")
            if pantsd_pids(repo.path) != [pantsd]:
                raise BenchError(f"pantsd of {repo.path} restarted: the runs are not warm")
        result["load_after_exports"] = os.getloadavg()[0]
        if settings.py_spy and settings.profile_exports:
            raw = OUT / "profiles" / f"pantsd-scale-{settings.targets}.raw"
            raw.parent.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen([settings.py_spy, "record", "-r", str(settings.profile_rate), "-f", "raw", "-o", str(raw),
                                    "-p", str(pantsd), *(["--idle"] if settings.profile_idle else [])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            profiled = []
            for n in range(settings.profile_exports):
                edit_and_commit(repo.path, repo.leaf_file, f"scale_profile_{n}_{time.time_ns()}")
                profiled.append(_checked(run_watched([str(PANTS), *export_args], cwd=repo.path, env=env,
                                                     limit_mb=settings.memory_limit_mb), "profiled export").seconds)
            time.sleep(0.5)
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=120)
            if raw.exists():
                result["profile"] = {"seconds": profiled, "summary": summarize_profile(raw, settings.profile_rate),
                                     "raw": str(raw.relative_to(ROOT))}
                log(f"profiled {len(profiled)} one-leaf exports: {profiled}")
    finally:
        stop_pantsd(repo.path)
        shutil.rmtree(cache, ignore_errors=True)
    result["incremental_export_s"] = summarize(exports)
    result["incremental_floor_s"] = summarize(floors)
    result["exports_s"] = exports
    result["export_goal_s"] = goal_clock
    result["export_timings_s"] = timings
    result["export_plan_rule_lines"] = plan_rule_lines
    result["export_plans_lines"] = plans_lines
    result["floors_s"] = floors
    result["pantsd_rss_mb"] = rss_after
    shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--exports", type=int, default=20)
    parser.add_argument("--floor-every", type=int, default=4, help="0: no floor runs in the daemon")
    parser.add_argument("--profile-exports", type=int, default=3)
    parser.add_argument("--memory-limit-mb", type=int, default=14000)
    parser.add_argument("--pantsd-max-memory", default="12GiB")
    parser.add_argument("--py-spy", default=None)
    parser.add_argument("--floor-goal", default="dependencies", help="the Pants goal over `::` run as the floor")
    parser.add_argument("--skip-cold", action="store_true", help="only the daemon runs")
    parser.add_argument("--profile-rate", type=int, default=EXPORT_RATE, help="py-spy's samples a second")
    parser.add_argument("--profile-idle", action="store_true", help="py-spy --idle: waiting threads sampled too")
    parser.add_argument("--output", default=None, help="write the result here as JSON")
    args = parser.parse_args()
    found = run(ScaleSettings(args.targets, args.exports, args.floor_every, args.profile_exports, args.memory_limit_mb,
                              args.pantsd_max_memory, Shape(), args.py_spy, args.floor_goal, args.skip_cold,
                              args.profile_rate, args.profile_idle),
                lambda m: print(f"[scale {time.strftime('%H:%M:%S')}] {m}", flush=True))
    text = json.dumps(found, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)

"""Run the benchmarks (export, load, install, pull mode) and regenerate docs/benchmarks.md.

Run through `bench/run`, which installs what is needed first. Every size and repetition count has a
flag and an environment variable (`BENCH_<FLAG>`, e.g. BENCH_SIZES=100,1000); `--quick` is a smoke run.
Results go to bench/results/<part>.json (committed with the report it produced); the report is built
from the parts present, so `--only serve` re-measures one part and keeps the others.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time

from generate_monorepo import Shape, generate
from procs import BENCH, OUT, PANTS, BenchError, install_cleanup, pants_env, stop_all
import cycle_bench
import environment_bench
import export_bench
import hardening_bench
import install_bench
import layout_bench
import objectstore_bench
import pages_bench
import profile_bench
import pull_bench
import pull_scale_bench
import month_bench
import report
import scale_bench
import serve_bench
import servers
import uv_workspace_bench
import versions_bench

PARTS = ("export", "serve", "install", "pull", "profile", "hardening", "versions", "cycles", "objectstore",
         "environments", "pages", "uv", "scale", "history", "layout", "month", "pullscale")
RESULTS = BENCH / "results"  # tracked: a partial run re-renders the other parts from here

FULL = {
    "sizes": "100,1000,3000", "package_sizes": "100,1000", "pip_wheel_sizes": "100",
    "cold_reps": "3,3,2", "warm_reps": 5, "incremental_reps": 3, "package_cold_reps": "2,1",
    "corpus_targets": 200, "chain": 50, "relay_workers": "1,2", "wrk_duration": 10, "wrk_reps": 2, "wrk_connections": 32,
    "install_reps": 5, "pull_targets": 1000, "pull_leaf_commits": 3, "pull_followed_commits": 3,
    "pull_rss_builds": 20, "profile_targets": 3000, "profile_pantsd_targets": 1000,
    "objectstore_reps": 3, "publish_dists": 1000,
    "hardening_exports": 20, "hardening_rounds": 4, "hardening_silent": 200, "hardening_log_reps": 3,
    "versions_targets": 1000, "versions_history": 5000, "versions_commits": 10, "versions_floor_reps": 3,
    "cycle_sizes": "30", "cycle_densities": "3,4,10", "cycle_timeout": 120.0,
    "environment_closure": 300, "environment_reps": 3,
    "pages_dists": 1000, "pages_commits": 20, "pages_reps": 20,
    "uv_members": 100, "uv_reps": 2,
    "scale_targets": 10000, "scale_exports": 20, "scale_floor_every": 4, "scale_profile_exports": 3,
    "scale_memory_limit_mb": 14000, "scale_pantsd_max_memory": "12GiB", "scale_skip_cold": 0,
    "history_targets": 10000, "history_commits": 50000, "history_new_commits": 5,
    "layout_dists": 10000, "layout_reps": 5,
    "month_dists": 1000, "month_sizes": "50,300,1500", "month_before_sizes": "50,300", "month_requests": 100,
    "month_s3_sizes": "300,1500", "month_previous_sizes": "1500",
    "pullscale_targets": 10000, "pullscale_leaf_commits": 3, "pullscale_max_memory": "14GiB",
    "pullscale_recycle_targets": 1000, "pullscale_followed_builds": 50, "pullscale_recycle_every": 20,
    "pullscale_parts": "builds,followed",
}
QUICK = {
    "sizes": "50,100", "package_sizes": "20", "pip_wheel_sizes": "10",
    "cold_reps": "1", "warm_reps": 2, "incremental_reps": 1, "package_cold_reps": "1",
    "corpus_targets": 60, "chain": 10, "relay_workers": "1,2", "wrk_duration": 2, "wrk_reps": 1, "wrk_connections": 32,
    "install_reps": 1, "pull_targets": 50, "pull_leaf_commits": 1, "pull_followed_commits": 1,
    "pull_rss_builds": 3, "profile_targets": 50, "profile_pantsd_targets": 50,
    "objectstore_reps": 1, "publish_dists": 50,
    "hardening_exports": 5, "hardening_rounds": 2, "hardening_silent": 50, "hardening_log_reps": 1,
    "versions_targets": 50, "versions_history": 200, "versions_commits": 2, "versions_floor_reps": 1,
    "cycle_sizes": "10", "cycle_densities": "3", "cycle_timeout": 30.0,
    "environment_closure": 30, "environment_reps": 1,
    "pages_dists": 100, "pages_commits": 5, "pages_reps": 5,
    "uv_members": 10, "uv_reps": 1,
    "scale_targets": 100, "scale_exports": 3, "scale_floor_every": 2, "scale_profile_exports": 1,
    "scale_memory_limit_mb": 14000, "scale_pantsd_max_memory": "4GiB", "scale_skip_cold": 0,
    "history_targets": 200, "history_commits": 2000, "history_new_commits": 2,
    "layout_dists": 300, "layout_reps": 2,
    "month_dists": 100, "month_sizes": "10,50", "month_before_sizes": "10", "month_requests": 20,
    "month_s3_sizes": "50", "month_previous_sizes": "50",
    "pullscale_targets": 50, "pullscale_leaf_commits": 1, "pullscale_max_memory": "4GiB",
    "pullscale_recycle_targets": 50, "pullscale_followed_builds": 5, "pullscale_recycle_every": 2,
    "pullscale_parts": "builds,followed",
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse_args(argv: list[str]) -> argparse.Namespace:
    quick = "--quick" in argv
    defaults = QUICK if quick else FULL
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, one repetition")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--no-report", action="store_true", help="measure only; leave docs/ as it is")
    parser.add_argument("--report", action="store_true",
                        help="measure nothing: regenerate docs/benchmarks.md from bench/out/results/")
    for key, value in defaults.items():
        flag = "--" + key.replace("_", "-")
        env = "BENCH_" + key.upper()
        parser.add_argument(flag, type=type(value), default=type(value)(os.environ.get(env, value)),
                            help=f"(env {env}, default {value})")
    for key, value in vars(Shape()).items():
        if key in {"targets", "chain", "cycle", "cycle_density", "dists", "pyprojects"}:
            continue
        parser.add_argument("--shape-" + key.replace("_", "-"), dest=f"shape_{key}", type=type(value),
                            default=type(value)(os.environ.get("BENCH_SHAPE_" + key.upper(), value)),
                            help="monorepo shape (see bench/generate_monorepo.py)")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"--only: unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    return args


def _shape(args: argparse.Namespace) -> Shape:
    return Shape(**{key: getattr(args, f"shape_{key}") for key in vars(Shape())
                    if hasattr(args, f"shape_{key}")})


COMMAND: list[str] = []  # this run's command line, recorded with each part


def _save(part: str, settings: dict[str, object], data: object, started: float) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "part": part,
        "command": " ".join(["bench/run", *COMMAND]),
        "quick": "--quick" in COMMAND,
        "started": datetime.datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "settings": settings,
        "data": data,
    }
    (RESULTS / f"{part}.json").write_text(json.dumps(payload, indent=2))


def run_export(args: argparse.Namespace) -> None:
    started = time.time()
    settings = export_bench.ExportSettings(
        sizes=_sizes(args.sizes), package_sizes=_sizes(args.package_sizes),
        pip_wheel_sizes=_sizes(args.pip_wheel_sizes), cold_reps=_sizes(args.cold_reps), warm_reps=args.warm_reps,
        incremental_reps=args.incremental_reps, package_cold_reps=_sizes(args.package_cold_reps), shape=_shape(args),
    )
    data = export_bench.run(settings, OUT / "venv" / "bin" / "python")
    _save("export", {**{k: getattr(args, k) for k in ("sizes", "package_sizes", "pip_wheel_sizes", "cold_reps",
                                                      "warm_reps", "incremental_reps", "package_cold_reps")},
                     "shape": vars(settings.shape)}, data, started)


def make_corpus(args: argparse.Namespace) -> servers.Corpus:
    """A monorepo of `corpus_targets` targets with a `chain`-long chain, exported into a store."""
    work = OUT / "corpus"
    shutil.rmtree(work, ignore_errors=True)
    shape = Shape(**{**vars(_shape(args)), "targets": args.corpus_targets, "chain": args.chain})
    repo = generate(work / "monorepo", shape)
    store = work / "store"
    log(f"exporting the corpus ({args.corpus_targets} targets) into {store}")
    env = pants_env({"PANTS_WORKDIR": str(work / "pants.d")})
    result = subprocess.run([str(PANTS), "--no-pantsd", "export-dists", f"--export-dists-output-dir={store}", "::"],
                            cwd=repo.path, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"exporting the corpus failed:\n{result.stderr[-3000:]}")
    assert repo.chain_head is not None
    return servers.load_corpus(store, repo.sha, repo.chain_head)


def run_servers(args: argparse.Namespace, parts: set[str]) -> None:
    started = time.time()
    corpus = make_corpus(args)
    if "profile" in parts:
        profiles["relay"] = profile_bench.relay_profile(corpus, args.wrk_duration, args.wrk_connections, log)
        if not parts & {"serve", "install"}:
            return
    work = OUT / "servers"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log("starting nginx, the relay (auth off and on), pypiserver and devpi-server")
    relays = [servers.relay(corpus, work, auth=auth, workers=workers)
              for workers in _sizes(args.relay_workers) for auth in (False, True)]
    indexes = [servers.nginx(corpus, work), *relays, servers.pypiserver(corpus, work), servers.devpi(corpus, work)]
    corpus_info = {"projects": len(corpus.projects), "page_project": corpus.page_project, "wheel": corpus.wheel,
                   "install_name": corpus.install_name, "install_count": corpus.install_count}
    try:
        if "serve" in parts:
            load = serve_bench.LoadSettings(threads=2, connections=args.wrk_connections,
                                            duration_s=args.wrk_duration, reps=args.wrk_reps)
            rows = []
            for index in indexes:
                rows += serve_bench.load_test(index, load, log)
            _save("serve", {"wrk": f"wrk -t2 -c{load.connections} -d{load.duration_s}s --latency",
                            "reps": load.reps, "corpus": corpus_info}, rows, started)
        if "install" in parts:
            started = time.time()
            python = sys.executable
            # Installs from the plain relay only (its access log counts the requests).
            chosen = [i for i in indexes if not i.name.startswith("relay") or i.name == "relay"]
            rows = install_bench.install_rounds(chosen, corpus, args.install_reps, python, log)
            _save("install", {"reps": args.install_reps, "corpus": corpus_info}, rows, started)
    finally:
        for index in indexes:
            index.server.stop()


profiles: dict[str, object] = {}


def run_profiles(args: argparse.Namespace, started: float) -> None:
    profiles["export"] = profile_bench.export_profile(args.profile_targets, _shape(args), log)
    profiles["pantsd"] = profile_bench.pantsd_profile(args.profile_pantsd_targets, _shape(args), 3, log)
    _save("profile", {"py-spy": f"record -r {profile_bench.EXPORT_RATE} (export), -r {profile_bench.SERVER_RATE} "
                      "(relay)"}, profiles, started)


def run_pull(args: argparse.Namespace) -> None:
    started = time.time()
    settings = pull_bench.PullSettings(
        targets=args.pull_targets, leaf_commits=args.pull_leaf_commits,
        followed_commits=args.pull_followed_commits, rss_builds=args.pull_rss_builds,
    )
    data = pull_bench.run(settings, sys.executable, log)
    _save("pull", vars(settings), data, started)


def run_pull_scale(args: argparse.Namespace) -> None:
    started = time.time()
    settings = pull_scale_bench.PullScaleSettings(
        targets=args.pullscale_targets, leaf_commits=args.pullscale_leaf_commits,
        pantsd_max_memory=args.pullscale_max_memory, recycle_targets=args.pullscale_recycle_targets,
        followed_builds=args.pullscale_followed_builds, recycle_every=args.pullscale_recycle_every,
    )
    parts = tuple(p for p in args.pullscale_parts.split(",") if p)
    data = pull_scale_bench.run(settings, log, parts)
    # Its two parts take long and may run apart: a part not run keeps its earlier results.
    try:
        earlier = json.loads((RESULTS / "pullscale.json").read_text())["data"]
    except (OSError, ValueError, KeyError):
        earlier = {}
    # A followed run is kept per size (followed_<targets>; "followed" is an older run at its own size).
    data = {**{k: v for k, v in earlier.items() if k == "builds" or k.startswith(("followed", "replaced"))}, **data}
    _save("pullscale", {**vars(settings), "parts": list(parts)}, data, started)


def run_objectstore(args: argparse.Namespace) -> None:
    started = time.time()
    load = serve_bench.LoadSettings(threads=2, connections=args.wrk_connections, duration_s=args.wrk_duration,
                                    reps=args.wrk_reps)
    data = objectstore_bench.run(load, args.objectstore_reps, args.publish_dists, log)
    _save("objectstore", {"wrk": f"wrk -t2 -c{load.connections} -d{load.duration_s}s --latency", "wrk_reps": load.reps,
                          "reps": args.objectstore_reps, "publish_dists": args.publish_dists}, data, started)


def run_hardening(args: argparse.Namespace) -> None:
    started = time.time()
    settings = hardening_bench.HardeningSettings(
        exports=args.hardening_exports, duration_s=args.wrk_duration, rounds=args.hardening_rounds,
        connections=args.wrk_connections, silent=args.hardening_silent, log_reps=args.hardening_log_reps,
    )
    data = hardening_bench.run(settings, log)
    _save("hardening", vars(settings), data, started)
def run_versions(args: argparse.Namespace) -> None:
    started = time.time()
    settings = versions_bench.VersionSettings(
        targets=args.versions_targets, history=args.versions_history, commits=args.versions_commits,
        floor_reps=args.versions_floor_reps, shape=_shape(args),
    )
    data = versions_bench.run(settings, log)
    _save("versions", {"targets": settings.targets, "history": settings.history, "commits": settings.commits,
                       "floor_reps": settings.floor_reps, "shape": vars(settings.shape)}, data, started)


def run_cycles(args: argparse.Namespace) -> None:
    started = time.time()
    data = cycle_bench.run(_sizes(args.cycle_sizes), _sizes(args.cycle_densities), args.cycle_timeout, log)
    _save("cycles", {"sizes": args.cycle_sizes, "densities": args.cycle_densities, "timeout": args.cycle_timeout},
          data, started)


def run_environments(args: argparse.Namespace) -> None:
    started = time.time()
    data = environment_bench.run(args.environment_closure, args.environment_reps, sys.executable, log)
    _save("environments", {"closure": args.environment_closure, "reps": args.environment_reps}, data, started)


def run_pages(args: argparse.Namespace) -> None:
    started = time.time()
    data = pages_bench.run(args.pages_dists, args.pages_commits, args.pages_reps, log)
    _save("pages", {"dists": args.pages_dists, "commits": args.pages_commits, "reps": args.pages_reps}, data, started)


def run_uv(args: argparse.Namespace) -> None:
    started = time.time()
    data = uv_workspace_bench.run(args.uv_members, args.uv_reps, log)
    _save("uv", {"members": args.uv_members, "reps": args.uv_reps}, data, started)


def run_scale(args: argparse.Namespace) -> None:
    if args.scale_floor_every < 1:
        # The report's rows compare the exports with floors measured in the same daemon.
        raise SystemExit("--scale-floor-every must be at least 1 here: the report needs the floor runs. "
                         "For a daemon of exports only, run bench/scale_bench.py --floor-every 0 --output FILE.")
    started = time.time()
    py_spy = OUT / "venv" / "bin" / "py-spy"
    settings = scale_bench.ScaleSettings(
        targets=args.scale_targets, exports=args.scale_exports, floor_every=args.scale_floor_every,
        profile_exports=args.scale_profile_exports, memory_limit_mb=args.scale_memory_limit_mb,
        pantsd_max_memory=args.scale_pantsd_max_memory, shape=_shape(args),
        py_spy=str(py_spy) if py_spy.exists() else None, skip_cold=bool(args.scale_skip_cold),
    )
    data = scale_bench.run(settings, log)
    if args.scale_skip_cold:
        # The cold runs do not change with what a daemon does: carried from the results file.
        earlier = json.loads((RESULTS / "scale.json").read_text())
        data.update({k: earlier["data"][k] for k in ("cold_export", "cold_dependencies", "cold_summary")
                     if k in earlier["data"]})
        data["cold_from"] = "the cold runs carried from the run started " + str(
            earlier["data"].get("cold_from_started") or earlier.get("started"))
        data["cold_from_started"] = earlier["data"].get("cold_from_started") or earlier.get("started")
    _save("scale", {**{k: v for k, v in vars(settings).items() if k not in {"shape", "py_spy"}},
                    "shape": vars(settings.shape)}, data, started)


def run_history(args: argparse.Namespace) -> None:
    """In Pants' Python: the plugin's glob matcher is Pants' own (native) one."""
    started = time.time()
    pants_python = subprocess.run([str(PANTS), "--bootstrap-venv"], capture_output=True, text=True,
                                  check=True).stdout.strip() + "/bin/python"
    result = OUT / "run" / "history.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    argv = [pants_python, str(BENCH / "history_bench.py"), "--targets", str(args.history_targets), "--history",
            str(args.history_commits), "--new-commits", str(args.history_new_commits), "--output", str(result)]
    if subprocess.run(argv, cwd=BENCH, env=pants_env()).returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed (its output is above)")
    _save("history", {"targets": args.history_targets, "history": args.history_commits,
                      "new_commits": args.history_new_commits}, json.loads(result.read_text()), started)


def run_layout(args: argparse.Namespace) -> None:
    started = time.time()
    data = layout_bench.run(args.layout_dists, args.layout_reps, log)
    _save("layout", {"dists": args.layout_dists, "reps": args.layout_reps}, data, started)


def run_month(args: argparse.Namespace) -> None:
    started = time.time()
    data = month_bench.run(args.month_dists, _sizes(args.month_sizes), _sizes(args.month_before_sizes),
                           args.month_requests, log, _sizes(args.month_s3_sizes), _sizes(args.month_previous_sizes))
    _save("month", {"dists": args.month_dists, "sizes": args.month_sizes, "before_sizes": args.month_before_sizes,
                    "requests": args.month_requests, "s3_sizes": args.month_s3_sizes,
                    "previous_sizes": args.month_previous_sizes}, data, started)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    COMMAND[:] = argv
    install_cleanup()
    parts = set(args.only.split(","))
    if args.report:
        parts = set()
    log(f"parts: {', '.join(p for p in PARTS if p in parts)}{' (quick)' if args.quick else ''}")
    try:
        if "export" in parts:
            run_export(args)
        if parts & {"serve", "install", "profile"}:
            run_servers(args, parts)
        if "pull" in parts:
            run_pull(args)
        if "pullscale" in parts:
            run_pull_scale(args)
        if "profile" in parts:
            run_profiles(args, time.time())
        if "objectstore" in parts:
            run_objectstore(args)
        if "hardening" in parts:
            run_hardening(args)
        if "versions" in parts:
            run_versions(args)
        if "cycles" in parts:
            run_cycles(args)
        if "environments" in parts:
            run_environments(args)
        if "pages" in parts:
            run_pages(args)
        if "uv" in parts:
            run_uv(args)
        if "scale" in parts:
            run_scale(args)
        if "history" in parts:
            run_history(args)
        if "layout" in parts:
            run_layout(args)
        if "month" in parts:
            run_month(args)
    except BenchError as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        stop_all()
    if not args.no_report:
        path = report.write(RESULTS)
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

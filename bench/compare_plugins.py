"""The export rows (cold, warm, incremental) of two checkouts' plugins on one repository, interleaved.

    bench/out/venv/bin/python bench/compare_plugins.py OTHER_CHECKOUT [--targets 1000] [--cold-reps 2]
        [--warm-reps 3] [--incremental-reps 3] [--json PATH]

OTHER_CHECKOUT is another export-dists checkout (e.g. `git archive PARENT | tar -x -C DIR`); each
run goes through that checkout's own `./pants`, which loads its own plugin. Both are measured on the
same generated repository, turn about (cold: A, B, A, B ...; then each with its own pantsd in its own
copy of the repository: first runs, then warm runs A, B, A, B ..., then incremental runs after the
same one-leaf commit in both copies), so machine load hits both alike. Compare
the ratios within one run only.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from export_bench import _fresh_cache, _repo  # noqa: E402
from generate_monorepo import Shape, edit_and_commit  # noqa: E402
from procs import ROOT, cache_env, pants_env, pantsd_pids, remember_pantsd, run_timed, stop_pantsd, summarize  # noqa: E402


def log(message: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _command(checkout: Path, out: Path, pantsd: bool) -> list[str]:
    return [str(checkout / "pants"), *([] if pantsd else ["--no-pantsd"]), "export-dists",
            f"--export-dists-output-dir={out}", "::"]


def _env(checkout: Path, cache: Path) -> dict[str, str]:
    return {**pants_env(cache_env(cache)), "EXPORT_DISTS_HOME": str(checkout)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--cold-reps", type=int, default=2)
    parser.add_argument("--warm-reps", type=int, default=3)
    parser.add_argument("--incremental-reps", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    checkouts = {"other": args.other.resolve(), "this": ROOT}
    repo = _repo("compare", Shape(targets=args.targets))
    log(f"generated {repo.path} ({args.targets} targets)")
    rows: dict[str, dict[str, list[float]]] = {k: {"cold": [], "first": [], "warm": [], "incremental": []} for k in checkouts}
    for rep in range(args.cold_reps):
        for name, checkout in checkouts.items():
            cache = _fresh_cache(f"compare-{name}-cold")
            shutil.rmtree(repo.path / "dist", ignore_errors=True)
            try:
                timed = run_timed(_command(checkout, cache / "out", False), cwd=repo.path, env=_env(checkout, cache))
            finally:
                shutil.rmtree(cache, ignore_errors=True)
            rows[name]["cold"].append(timed.seconds)
            log(f"{name} cold #{rep + 1}: {timed.seconds:.1f} s")
    # Each plugin gets its own copy of the repository (pantsd is one per build root), and the warm and
    # incremental runs alternate between them, so load that comes and goes hits both alike.
    roots = {"other": repo.path, "this": repo.path.parent / (repo.path.name + "-this")}
    shutil.rmtree(roots["this"], ignore_errors=True)
    shutil.copytree(repo.path, roots["this"], symlinks=True)
    caches = {name: _fresh_cache(f"compare-{name}-pantsd") for name in checkouts}
    envs = {name: _env(checkout, caches[name]) for name, checkout in checkouts.items()}

    def once(name: str) -> float:
        command = _command(checkouts[name], caches[name] / "out", True)
        return run_timed(command, cwd=roots[name], env=envs[name]).seconds

    try:
        pids = {}
        for name in checkouts:
            remember_pantsd(roots[name])
            rows[name]["first"].append(once(name))
            remember_pantsd(roots[name])
            pids[name] = pantsd_pids(roots[name])
        for _ in range(args.warm_reps):
            for name in checkouts:
                rows[name]["warm"].append(once(name))
        for rep in range(args.incremental_reps):
            stamp = f"{int(time.time() * 1000)}_{rep}"
            for name in checkouts:
                edit_and_commit(roots[name], repo.leaf_file, stamp)
                rows[name]["incremental"].append(once(name))
        for name in checkouts:
            if pantsd_pids(roots[name]) != pids[name]:
                log(f"{name}: pantsd restarted during the warm runs; its warm figures are not warm")
            log(f"{name}: first {rows[name]['first'][0]:.1f} s, warm {rows[name]['warm']}, incremental {rows[name]['incremental']}")
    finally:
        for name in checkouts:
            stop_pantsd(roots[name])
            shutil.rmtree(caches[name], ignore_errors=True)
    summary = {name: {kind: summarize(values) for kind, values in kinds.items() if values} for name, kinds in rows.items()}
    for kind in ("cold", "warm", "incremental"):
        ratio = summary["this"][kind]["median"] / summary["other"][kind]["median"]  # type: ignore[operator]
        log(f"{kind}: this {summary['this'][kind]['median']:.2f} s vs other {summary['other'][kind]['median']:.2f} s (x{ratio:.2f})")
    document = {"targets": args.targets, "other": str(checkouts["other"]), "runs": rows, "summary": summary}
    if args.json:
        args.json.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

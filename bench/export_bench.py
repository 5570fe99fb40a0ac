"""Export benchmarks: `pants export-dists ::` against `pants package ::` and `pip wheel` per package."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from generate_monorepo import GeneratedRepo, Shape, edit_and_commit, generate
from procs import (
    OUT, PANTS, BenchError, cache_env, pants_env, proc_rss_mb, pantsd_pids, remember_pantsd, run_timed,
    stop_pantsd, summarize,
)


@dataclass(frozen=True)
class ExportSettings:
    sizes: tuple[int, ...]  # export-dists target counts
    package_sizes: tuple[int, ...]  # `pants package ::` target counts
    pip_wheel_sizes: tuple[int, ...]
    cold_reps: tuple[int, ...]  # per export size; the last one repeats
    warm_reps: int
    incremental_reps: int
    package_cold_reps: tuple[int, ...]  # per package size; the last one repeats
    shape: Shape  # targets is replaced per size


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _repo(kind: str, shape: Shape) -> GeneratedRepo:
    dest = OUT / "repos" / f"{kind}-{shape.targets}"
    if dest.exists():
        shutil.rmtree(dest)
    return generate(dest, shape)


def _fresh_cache(tag: str) -> Path:
    base = OUT / "caches"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=base))


def _pants(args: list[str], *, pantsd: bool) -> list[str]:
    return [str(PANTS), *([] if pantsd else ["--no-pantsd"]), *args]


def _export_args(out_dir: Path) -> list[str]:
    return ["export-dists", f"--export-dists-output-dir={out_dir}", "::"]


def _package_args() -> list[str]:
    return ["package", "::"]


def _check_output(kind: str, repo: Path, output: str, cache: Path, expected: int) -> int:
    """How many artifacts the run wrote, failing if it is not one per target."""
    if kind == "export-dists":
        wheels = len(list(cache.glob("out/*/*.whl")))
    else:
        wheels = len(list((repo / "dist").glob("*.whl")))  # Pants' dist dir must be in the build root
    if wheels < expected:
        raise BenchError(f"{kind} in {repo} wrote {wheels} wheels, expected {expected}:\n{output[-2000:]}")
    return wheels


def measure_tool(kind: str, repo: GeneratedRepo, settings: ExportSettings, cold_reps: int,
                 with_pantsd: bool) -> dict[str, object]:
    """Cold (no pantsd, empty caches), then first run with pantsd, warm and incremental runs."""
    n = repo.shape.targets
    args_for: Callable[[Path], list[str]] = {
        "export-dists": lambda cache: _export_args(cache / "out"),
        "package": lambda cache: _package_args(),
        "dependencies": lambda cache: ["dependencies", "::"],
    }[kind]
    result: dict[str, object] = {"tool": kind, "targets": n}
    cold = []
    for rep in range(cold_reps):
        cache = _fresh_cache(f"{kind}-{n}-cold")
        shutil.rmtree(repo.path / "dist", ignore_errors=True)
        try:
            timed = run_timed(_pants(args_for(cache), pantsd=False), cwd=repo.path,
                              env=pants_env(cache_env(cache)))
            if kind != "dependencies":
                _check_output(kind, repo.path, timed.output, cache, n)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        log(f"{kind} {n} targets cold #{rep + 1}: {timed.seconds:.1f} s, {timed.max_rss_mb:.0f} MB")
        cold.append(timed)
    result["cold_s"] = summarize([t.seconds for t in cold])
    result["cold_rss_mb"] = summarize([t.max_rss_mb for t in cold])
    if not with_pantsd:
        return result

    cache = _fresh_cache(f"{kind}-{n}-pantsd")
    env = pants_env(cache_env(cache))
    remember_pantsd(repo.path)
    try:
        first = run_timed(_pants(args_for(cache), pantsd=True), cwd=repo.path, env=env)
        remember_pantsd(repo.path)
        pids = pantsd_pids(repo.path)
        if not pids and kind == "dependencies":
            # pantsd exits after a run that leaves it above [GLOBAL].pantsd_max_memory_usage (4 GiB by
            # default): `dependencies ::` at 3,000 targets takes ~7 GB. No warm floor at that size.
            log(f"{kind} {n} targets: pantsd exited after its first run (over its memory limit); no warm runs")
            result["pantsd_first_s"] = first.seconds
            result["pantsd_exited"] = True
            return result
        if len(pids) != 1:
            raise BenchError(f"expected one pantsd in {repo.path} after the first run, found {pids}")
        pantsd = pids[0]
        log(f"{kind} {n} targets, first run starting pantsd: {first.seconds:.1f} s")
        result["pantsd_first_s"] = first.seconds
        warm = [run_timed(_pants(args_for(cache), pantsd=True), cwd=repo.path, env=env)
                for _ in range(settings.warm_reps)]
        log(f"{kind} {n} targets warm: " + ", ".join(f"{t.seconds:.2f}" for t in warm) + " s")
        result["warm_s"] = summarize([t.seconds for t in warm])
        result["warm_client_rss_mb"] = summarize([t.max_rss_mb for t in warm])
        # ./pants talks to pantsd through Pants' native (Rust) client; the Python client, for comparison.
        python_client_env = {**env, "EXPORT_DISTS_NATIVE_CLIENT": "0"}
        warm_python = [run_timed(_pants(args_for(cache), pantsd=True), cwd=repo.path, env=python_client_env)
                       for _ in range(settings.warm_reps)]
        log(f"{kind} {n} targets warm, Python client: " + ", ".join(f"{t.seconds:.2f}" for t in warm_python) + " s")
        result["warm_python_client_s"] = summarize([t.seconds for t in warm_python])
        result["pantsd_rss_after_warm_mb"] = proc_rss_mb(pantsd)["rss"]
        incremental = []
        for rep in range(settings.incremental_reps):
            edit_and_commit(repo.path, repo.leaf_file, f"{int(time.time() * 1000)}_{rep}")
            timed = run_timed(_pants(args_for(cache), pantsd=True), cwd=repo.path, env=env)
            incremental.append(timed)
        log(f"{kind} {n} targets incremental: " + ", ".join(f"{t.seconds:.2f}" for t in incremental) + " s")
        if pantsd_pids(repo.path) != [pantsd]:
            raise BenchError(f"pantsd of {repo.path} restarted during the warm runs: the timings are not warm")
        result["incremental_s"] = summarize([t.seconds for t in incremental])
        memory = proc_rss_mb(pantsd)
        result["pantsd_rss_mb"] = memory["rss"]
        result["pantsd_peak_rss_mb"] = memory["peak"]
    finally:
        stop_pantsd(repo.path)
        shutil.rmtree(cache, ignore_errors=True)
    return result


def pip_wheel(repo: GeneratedRepo, python: Path, jobs: int) -> dict[str, object]:
    """`pip wheel --no-deps` of every package (a pyproject.toml each), `jobs` at a time, build isolation on."""
    copy = OUT / "repos" / f"pipwheel-work-{repo.shape.targets}"
    wheels = OUT / "repos" / f"pipwheel-wheels-{repo.shape.targets}"
    for path in (copy, wheels):
        shutil.rmtree(path, ignore_errors=True)
    # setuptools writes build/ and *.egg-info into the package: build from a copy.
    shutil.copytree(repo.path, copy, ignore=shutil.ignore_patterns(".git"))
    env = {**os.environ, "PIP_CONFIG_FILE": "/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PIP_CACHE_DIR": str(OUT / "pip-cache")}
    cert = "/etc/ssl/certs/ca-certificates.crt"
    if os.path.exists(cert):
        env["PIP_CERT"] = cert
    directories = [copy / t.directory for t in repo.targets]
    # Warm pip's cache of setuptools first: the peer is measured building, not downloading.
    subprocess.run([str(python), "-m", "pip", "download", "--quiet", "-d", str(OUT / "pip-cache" / "dl"),
                    "setuptools>=61", "wheel"], env=env, check=True, capture_output=True)

    def build(directory: Path) -> float:
        start = time.perf_counter()
        result = subprocess.run([str(python), "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels),
                                 str(directory)], env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise BenchError(f"pip wheel {directory} failed:\n{tail_text(result.stderr)}")
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        per_package = list(pool.map(build, directories))
    total = time.perf_counter() - start
    built = len(list(wheels.glob("*.whl")))
    shutil.rmtree(copy, ignore_errors=True)
    if built != len(directories):
        raise BenchError(f"pip wheel built {built} wheels for {len(directories)} packages")
    log(f"pip wheel {len(directories)} packages, {jobs} at a time: {total:.1f} s")
    return {"tool": "pip wheel", "targets": repo.shape.targets, "cold_s": summarize([total]),
            "per_package_s": summarize(per_package), "jobs": jobs}


def tail_text(text: str) -> str:
    return "\n".join(text.splitlines()[-20:])


def run(settings: ExportSettings, python: Path) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    for i, n in enumerate(settings.sizes):
        cold_reps = settings.cold_reps[min(i, len(settings.cold_reps) - 1)]
        shape = Shape(**{**settings.shape.__dict__, "targets": n})
        repo = _repo("export", shape)
        log(f"generated {repo.path} ({n} targets)")
        results.append(measure_tool("export-dists", repo, settings, cold_reps, with_pantsd=True))
        # Pants' own floor on the same repository: start-up, BUILD files, dependency inference; with
        # pantsd too, since Pants' per-run cost (options, BUILD files re-parsed each session) bounds
        # the warm and incremental exports.
        results.append(measure_tool("dependencies", repo, settings, 1, with_pantsd=True))
    for i, n in enumerate(settings.package_sizes):
        reps = settings.package_cold_reps[min(i, len(settings.package_cold_reps) - 1)]
        shape = Shape(**{**settings.shape.__dict__, "targets": n, "dists": True})
        repo = _repo("package", shape)
        log(f"generated {repo.path} ({n} targets, one python_distribution each)")
        # The daemon runs only where they are cheap enough to repeat: the smallest size.
        results.append(measure_tool("package", repo, settings, reps,
                                    with_pantsd=n == min(settings.package_sizes)))
    for n in settings.pip_wheel_sizes:
        shape = Shape(**{**settings.shape.__dict__, "targets": n, "pyprojects": True})
        repo = _repo("pipwheel", shape)
        results.append(pip_wheel(repo, python, jobs=os.cpu_count() or 2))
    return results

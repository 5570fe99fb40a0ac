"""History at scale (issue 24): versions by content over a long first-parent history, without Pants.

A generated monorepo (bench/generate_monorepo.py) gets `history` first-parent commits with `git
fast-import` (each edits one module of a target; only every other target is ever edited, so half the
dists keep the root commit as their origin and every walk reads the whole history, the worst case).
Then what an export does with the history (versioning.py, content_versions.py, the core's history,
inputs and origins modules), timed per step against git's own cost in the same run:

- **once**: a fresh process (a new pantsd): `git log` of the whole history, parsed, the dists' inputs
  indexed, every dist's origin found;
- **per new commit**: one more commit on main, then the history read as its new commits on top of
  the one read before, and the origins found again, going on from the walk before (as pantsd does:
  versioning.py's remembered histories, content_versions.py's last walk); `new_commits` of them.

The floor of each is git alone: the same `git log` command with its output thrown away.
Run with Pants' Python (the glob matcher is Pants' own), core/ and pants-plugins/ on sys.path.
"""
from __future__ import annotations

import dataclasses
import gc
import os
import resource
import shutil
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from generate_monorepo import GeneratedRepo, Shape, edit_and_commit, fast_import_history, generate, git, plan_targets
from procs import OUT, ROOT, summarize

sys.path[:0] = [str(ROOT / "core"), str(ROOT / "pants-plugins")]

from export_dists_core.graphs import Condensed, condense  # noqa: E402
from export_dists_core.history import HistoryCommit, parse_history  # noqa: E402
from export_dists_core.inputs import DistInputs, InputIndex  # noqa: E402
from export_dists_core.origins import Origins, Walk, find_origins  # noqa: E402
from export_dists.content_versions import pants_glob_matcher  # noqa: E402
from export_dists.versioning import _history_process  # noqa: E402


@dataclass(frozen=True)
class HistorySettings:
    targets: int
    history: int  # synthetic first-parent commits
    new_commits: int  # one-leaf commits measured one at a time after the first read
    shape: Shape


def add_history(repo: GeneratedRepo, commits: int, log: Callable[[str], None]) -> float:
    """`commits` first-parent commits on main, each editing one module of every other target in turn,
    written with one `git fast-import`; the seconds it took."""
    files = [f"{t.directory}/m0.py" for t in repo.targets[::2]]
    seconds = fast_import_history(repo, files, commits)
    log(f"added {commits} commits of history with git fast-import in {seconds:.1f} s")
    return seconds


def _inputs(repo: GeneratedRepo) -> dict[str, DistInputs]:
    """Each target's inputs as the plugin plans them (python_sources' default globs)."""
    result = {}
    for t in repo.targets:
        d = t.directory
        result[f"{d}:{d.rsplit('/', 1)[-1]}"] = DistInputs(
            files=(f"{d}/__init__.py", *(f"{d}/m{i}.py" for i in range(repo.shape.files_per_target))),
            includes=(f"{d}/*.py", f"{d}/*.pyi"),
            excludes=(f"{d}/test_*.py", f"{d}/*_test.py", f"{d}/tests.py", f"{d}/conftest.py"),
            directories=(d,),
            imports=tuple(f"{m}.m0" for m in t.deps) + ((t.third_party,) if t.third_party else ()),
        )
    return result


def _graph(repo: GeneratedRepo) -> dict[str, tuple[str, ...]]:
    key = {t.module: f"{t.directory}:{t.directory.rsplit('/', 1)[-1]}" for t in repo.targets}
    return {key[t.module]: tuple(key[m] for m in t.deps) for t in repo.targets}


def _git_log(repo: Path, revisions: str) -> tuple[bytes, float]:
    argv = ["git", *_history_process("git", str(repo), revisions).argv[1:]]
    started = time.perf_counter()
    output = subprocess.run(argv, check=True, capture_output=True).stdout
    return output, time.perf_counter() - started


@dataclass
class _Last:
    inputs: dict[str, DistInputs]
    graph: dict[str, tuple[str, ...]]
    index: InputIndex
    condensed: Condensed[str]
    walk: Walk | None


def _origins(history: tuple[HistoryCommit, ...], repo: GeneratedRepo, last: _Last | None,
             imports: dict[str, tuple[str, ...]] | None = None) -> tuple[dict[str, float], _Last, Origins]:
    """What content_origins does, step by step: the dists' inputs and graph (made per export from the
    plans), the index and condensed graph (kept from the export before when both are equal), the walk
    (going on from the export before's walk when it can); seconds per step."""
    timings = {}
    started = time.perf_counter()
    # The plugin makes these from its plans (kept by pantsd); here from the generated targets.
    inputs, graph = _inputs(repo), _graph(repo)
    for key, added in (imports or {}).items():
        inputs[key] = dataclasses.replace(inputs[key], imports=inputs[key].imports + added)
    timings["inputs_s"] = time.perf_counter() - started
    started = time.perf_counter()
    same = last is not None and (last.inputs, last.graph) == (inputs, graph)
    timings["compare_s"] = time.perf_counter() - started
    started = time.perf_counter()
    if same:
        assert last is not None
        index, condensed, since = last.index, last.condensed, last.walk
    elif last is not None:  # the same settings: the index made from the last one for the dists that changed
        condensed = last.condensed if last.graph == graph else condense(graph)
        index, since = last.index.with_inputs(inputs), last.walk
    else:
        index = InputIndex(
            inputs,
            build_patterns=("BUILD", "BUILD.*"),
            repository_wide_directories=("3rdparty/python",),
            repository_wide_trees=(),
            glob_matcher=pants_glob_matcher,
        )
        condensed, since = condense(graph), (last.walk if last is not None else None)
    timings["index_s"] = time.perf_counter() - started
    started = time.perf_counter()
    found = find_origins(history, index, condensed, since=since)
    timings["walk_s"] = time.perf_counter() - started
    assert len(found.index) == len(inputs)
    return timings, _Last(inputs, graph, index, condensed, found.walk), found


def _existing(dest: Path, shape: Shape) -> GeneratedRepo | None:
    """The repository an earlier run generated at `dest`, if it is there (--reuse)."""
    if not (dest / ".git").is_dir():
        return None
    targets = plan_targets(shape)
    depended_on = {dep for target in targets for dep in target.deps}
    leaves = [t for t in targets if not t.deps and t.module in depended_on] or [targets[-1]]
    leaf = leaves[len(leaves) // 2]
    return GeneratedRepo(path=dest.resolve(), shape=shape, sha=git(dest, "rev-parse", "HEAD"),
                         leaf_file=f"{leaf.directory}/m{shape.files_per_target - 1}.py", chain_head=None,
                         chain_head_module=None, cycle_head=None, targets=tuple(targets))


def run(settings: HistorySettings, log: Callable[[str], None], reuse: bool = False) -> dict[str, object]:
    shape = Shape(**{**settings.shape.__dict__, "targets": settings.targets})
    dest = OUT / "repos" / f"history-{settings.targets}-{settings.history}"
    result: dict[str, object] = {"targets": settings.targets, "history": settings.history,
                                 "load_at_start": os.getloadavg()[0]}
    repo = _existing(dest, shape) if reuse else None
    if repo is None:
        if dest.exists():
            shutil.rmtree(dest)
        started = time.monotonic()
        repo = generate(dest, shape)
        log(f"generated {settings.targets} targets in {time.monotonic() - started:.1f} s")
        result["fast_import_s"] = add_history(repo, settings.history, log)

    # Once: the whole history, as a fresh process reads it.
    head = git(repo.path, "rev-parse", "HEAD")
    gc.collect()
    tracemalloc.start()
    output, git_s = _git_log(repo.path, head)
    started = time.perf_counter()
    history = parse_history(output)
    parse_s = time.perf_counter() - started
    output_mb = len(output) / 1e6
    del output
    gc.collect()
    history_mb = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    steps, last, _ = _origins(history, repo, None)
    once = {"git_s": git_s, "parse_s": parse_s, **steps, "history_mb": history_mb, "git_output_mb": output_mb}
    once["ours_s"] = parse_s + sum(steps.values())
    result["once"] = once
    result["commits_read"] = len(history)
    log(f"whole history ({len(history)} commits) once: git {git_s:.2f} s, then parse {parse_s:.2f} s, "
        + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()) + f"; history held {history_mb:.1f} MB "
        f"(git's output {output_mb:.1f} MB)")

    # Per new commit: its commits on top of the history read before, then the origins again. First
    # commits that change one module's body (every dist's inputs stay the same), then commits that
    # add an import to a leaf module (that dist's inputs change: it is walked on below, alone).
    leaf_key = next(key for key in _graph(repo) if key.startswith(repo.leaf_file.rsplit("/", 1)[0] + ":"))
    imports: dict[str, tuple[str, ...]] = {}
    for kind in ("per_commit", "per_import_commit"):
        per: dict[str, list[float]] = {}
        for n in range(settings.new_commits):
            previous = history[0].sha
            if kind == "per_import_commit":
                module = f"gen.added{n}"
                imports[leaf_key] = imports.get(leaf_key, ()) + (module,)
                path = repo.path / repo.leaf_file
                path.write_text(f"import {module}  # history_bench\n" + path.read_text())
                git(repo.path, "commit", "--quiet", "--all", "--message", f"import {module}")
                sha = git(repo.path, "rev-parse", "HEAD")
            else:
                sha = edit_and_commit(repo.path, repo.leaf_file, f"history_bench_{n}_{time.time_ns()}")
            output, git_s = _git_log(repo.path, f"{previous}..{sha}")
            started = time.perf_counter()
            new = parse_history(output)
            assert new and new[-1].parent == previous
            history = new + history
            parse_s = time.perf_counter() - started
            steps, last, found = _origins(history, repo, last, imports)
            for key, value in {"git_s": git_s, "parse_s": parse_s, **steps, "ours_s": parse_s + sum(steps.values())}.items():
                per.setdefault(key, []).append(value)
        # The last commit's origins equal a full walk's.
        fresh = find_origins(history, last.index, last.condensed)
        assert fresh.index == found.index, "the walk that went on differs from a full walk"
        result[kind] = {key: summarize(values) for key, values in per.items()}
        log(f"{kind.replace('_', ' ')} (median): " + ", ".join(f"{k} {summarize(v)['median']:.3f}" for k, v in per.items()))
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["load_at_end"] = os.getloadavg()[0]
    return result


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--history", type=int, default=50000)
    parser.add_argument("--new-commits", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="use the repository an earlier run generated")
    parser.add_argument("--output", default=None, help="write the result here as JSON")
    args = parser.parse_args()
    found = run(HistorySettings(args.targets, args.history, args.new_commits, Shape()),
                lambda m: print(f"[history {time.strftime('%H:%M:%S')}] {m}", flush=True), reuse=args.reuse)
    text = json.dumps(found, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)

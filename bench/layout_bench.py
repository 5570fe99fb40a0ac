"""Writing an export directory at scale (issue 24), without Pants: core/export_dists_core/layout.py alone.

N synthetic dists (wheels of a few KB, three first-party requirements each, content versions), written
by the goal's three calls (`export_files`, `link_sources`, `write_export`) into one output directory:

- **cold**: the first export (nothing to link from);
- **after a commit**: the next commit's export, one dist changed (the rest linked from the export
  before), `reps` times, each on top of the one before;
- **staged**: the same exports into a second output directory as the goal writes them with versions
  by content: the directory staged from the export before on a thread (core/export_dists_core/staging.py)
  while Pants plans, timed alone and waited for, then what is left on the export's path (`take`,
  `link_sources` of the dists not staged, `write_export`): the export's part when the staging
  overlaps Pants' planning entirely;
- **floor**: what the contract itself asks of the file system for such an export, timed alone in the
  same run: one directory per dist (`simple/<project>/`) and three hard links per dist (wheel,
  .metadata, page) in a new directory, renamed into place.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "core"))

from export_dists_core.layout import ExportedDist, ExportInfo, export_files, link_sources, write_export  # noqa: E402
from export_dists_core.staging import StagedExport  # noqa: E402
from export_dists_core.wheel import Wheel  # noqa: E402


def _dist(i: int, n: int, version: str) -> ExportedDist:
    name = f"monorepo.src.python.gen.l{i % 6}.t{i:05d}"
    filename = f"monorepo_src_python_gen_l{i % 6}_t{i:05d}-{version}-py3-none-any.whl"
    content = hashlib.sha256(filename.encode()).digest() * 64  # 2 KB
    wheel = Wheel(filename=filename, content=content, metadata=f"Metadata-Version: 2.4\nName: {name}\n".encode() * 8)
    requires = tuple(f"monorepo.src.python.gen.l{(i + 1) % 6}.t{(i * 7 + k) % n:05d}==0.1+gaaaaaaaaaaaa" for k in range(3))
    return ExportedDist(name=name, version=version, address=f"src/python/gen/t{i:05d}:t{i:05d}", wheel=wheel,
                        requires_dist=requires, requires_python=">=3.9,<3.12", origin="a" * 40, fingerprint="b" * 64)


def _info(n: int) -> ExportInfo:
    sha = hashlib.sha1(str(n).encode()).hexdigest()
    return ExportInfo(sha=sha, version=f"0.{n}+g{sha[:12]}", count=n, namespace="monorepo", dirty=False,
                      branches=("main",), tags=(), commit_time="2026-12-06T00:00:00+00:00", version_scheme="content")


def _export(out: Path, number: int, dists: list[ExportedDist]) -> dict[str, float]:
    info = _info(number)
    started = time.perf_counter()
    files = export_files(info, dists)
    rendered = time.perf_counter()
    links = link_sources(out, info.directory_name, dists)
    found = time.perf_counter()
    result = write_export(out, info.directory_name, files, links)
    done = time.perf_counter()
    return {"render_s": rendered - started, "find_links_s": found - rendered, "write_s": done - found,
            "total_s": done - started, "linked": result.linked}


def _staged_export(out: Path, number: int, dists: list[ExportedDist]) -> dict[str, float]:
    info = _info(number)
    started = time.perf_counter()
    staging = StagedExport.start(out, lambda: info.directory_name)
    staging._thread.join()  # as if Pants' planning took longer than staging
    staged_at = time.perf_counter()
    try:
        files = export_files(info, dists)
        rendered = time.perf_counter()
        staged = staging.take(dists)
        unstaged = [d for d in dists if not (staged and staged.holds(d))]
        links = link_sources(out, info.directory_name, unstaged)
        found = time.perf_counter()
        result = write_export(out, info.directory_name, files, links, staged)
        done = time.perf_counter()
    finally:
        staging.close()
    return {"staging_s": staged_at - started, "render_s": rendered - staged_at, "find_links_s": found - rendered,
            "write_s": done - found, "total_s": done - staged_at, "linked": result.linked}


def _floor(work: Path, source: Path, dists: list[ExportedDist]) -> float:
    """mkdir per dist and three links per dist into a staging directory, renamed: the file system's part."""
    staging = work / ".floor-staging"
    started = time.perf_counter()
    os.mkdir(staging)
    os.mkdir(staging / "simple")
    for dist in dists:
        os.mkdir(os.path.join(staging, "simple", dist.project))
        for relpath in (dist.wheel.filename, f"{dist.wheel.filename}.metadata", f"simple/{dist.project}/index.html"):
            os.link(os.path.join(source, relpath), os.path.join(staging, relpath))
    os.rename(staging, work / "floor")
    seconds = time.perf_counter() - started
    shutil.rmtree(work / "floor")
    return seconds


def run(n: int, reps: int, log: Callable[[str], None]) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="layout-", dir=BENCH / "out"))
    try:
        out = work / "out"
        dists = [_dist(i, n, "0.1+gaaaaaaaaaaaa") for i in range(n)]
        result: dict[str, object] = {"dists": n, "load_at_start": os.getloadavg()[0]}
        staged_out = work / "out-staged"
        result["cold"] = _export(out, 1, dists)
        _export(staged_out, 1, dists)
        log(f"cold export of {n} dists: {result['cold']}")
        after, staged, floors = [], [], []
        for rep in range(reps):
            changed = (rep * 37) % n
            dists[changed] = _dist(changed, n, f"0.{rep + 2}+g{rep + 2:012d}")
            after.append(_export(out, rep + 2, dists))
            staged.append(_staged_export(staged_out, rep + 2, dists))
            floors.append(_floor(work, out / _info(rep + 2).directory_name, dists))
            log(f"after a commit #{rep + 1}: {after[-1]}; staged {staged[-1]}; floor {floors[-1]:.3f} s")
        result["after_commit"] = after
        result["after_commit_staged"] = staged
        result["floor_s"] = floors
        result["load_at_end"] = os.getloadavg()[0]
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dists", type=int, default=10000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--output", default=None, help="write the result here as JSON")
    args = parser.parse_args()
    found = run(args.dists, args.reps, lambda m: print(f"[layout {time.strftime('%H:%M:%S')}] {m}", flush=True))
    text = json.dumps(found, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)

"""The checks an export runs over every plan, in-process: 10,000 synthetic plans, a first run and
runs with one plan changed (what pantsd hands an export after a one-leaf commit).

Run with the Python Pants runs on (it imports Pants), from the checkout whose plugin to measure:

    $(./pants --bootstrap-venv | tail -1)/bin/python bench/plan_checks_bench.py [--dists N] [--runs N]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "pants-plugins"), str(ROOT / "core")]

from pants.engine.addresses import Address  # noqa: E402
from pants.engine.fs import EMPTY_DIGEST  # noqa: E402

from export_dists.checks import check_plans  # noqa: E402
from export_dists.dists import (  # noqa: E402
    DependencyEdge,
    DistIdentity,
    DistKind,
    DistPlan,
    EdgeKind,
    FirstPartyDependency,
    OwnedFile,
)
from export_dists.subsystem import UnexportableDependencies  # noqa: E402

try:
    from export_dists.toplevel import stray_top_level_of
except ImportError:  # a checkout from before it (0faaa0c and older): the check's own loop
    from export_dists.toplevel import stray_top_level

    def stray_top_level_of(plans):  # type: ignore[no-redef]
        return tuple(s for s in map(stray_top_level, plans) if s is not None)


def _address(i: int) -> Address:
    return Address(f"src/python/gen/l{i % 6}/t{i:05d}", target_name=f"t{i:05d}")


def _identity(i: int) -> DistIdentity:
    return DistIdentity(_address(i), "python_sources", f"monorepo.gen.l{i % 6}.t{i:05d}", DistKind.PYTHON)


def _plan(i: int, dists: int, edit: str = "") -> DistPlan:
    """Three modules and up to three dependencies on later dists (the same ones for every edit)."""
    address = _address(i)
    deps = sorted({random.Random(i).randrange(i + 1, dists) for _ in range(3)}) if i < dists - 1 else []
    return DistPlan(
        identity=_identity(i),
        files=tuple(
            OwnedFile(f"src/python/gen/l{i % 6}/t{i:05d}/m{k}{edit}.py", f"gen/l{i % 6}/t{i:05d}/m{k}{edit}.py", address)
            for k in range(3)
        ),
        digest=EMPTY_DIGEST,
        first_party=tuple(
            FirstPartyDependency(_identity(d), (DependencyEdge(address, _address(d), EdgeKind.INFERRED),)) for d in deps
        ),
        third_party=(),
        not_exportable=(),
        excluded=(),
        requires_python=None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dists", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    plans = dict(sorted({_address(i): _plan(i, args.dists) for i in range(args.dists)}.items()))

    def run(label: str) -> None:
        started = time.perf_counter()
        check_plans(plans, UnexportableDependencies.WARN)
        checked = time.perf_counter()
        stray_top_level_of(plans.values())
        print(f"{label}: check_plans {checked - started:.3f} s, top-level {time.perf_counter() - checked:.3f} s", flush=True)

    run("first run")
    changed = args.dists * 9165 // 10000
    for n in range(args.runs):
        plans[_address(changed)] = _plan(changed, args.dists, edit=f"_{n}")
        run(f"one plan changed, run {n + 1}")


if __name__ == "__main__":
    main()

"""Check the plugin's uses of Pants against the committed snapshot of every supported release.

    python build-support/pants_api/check.py        # exit 1 and one line per problem

No network, no Pants, no clone: only the plugin's source (uses.py) and snapshots/*.json
(snapshot.py). A use must hold at every release its version gates admit: the name exists (module,
class member, attribute), a call passes no more positional arguments than the callee takes and only
keywords it knows, and a call by name (`**implicitly()`) goes to a rule. What this cannot tell (the
engine building its rule graph, behaviour) is in the README's supported-versions table.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from uses import Use, collect_uses  # noqa: E402

ROOT = HERE.parent.parent
PLUGIN = ROOT / "pants-plugins" / "export_dists"
SNAPSHOTS = HERE / "snapshots"
REGENERATE = "python build-support/pants_api/snapshot.py --pants-git <pantsbuild/pants clone>"


@dataclass(frozen=True)
class Problem:
    tag: str
    use: Use
    message: str

    def __str__(self) -> str:
        gates = f" (under {', '.join(map(str, self.use.gates))})" if self.use.gates else ""
        return f"{self.use.where}: {self.use.key}{gates} at {self.tag}: {self.message}"


def load_snapshots(directory: Path = SNAPSHOTS) -> list[dict[str, Any]]:
    snapshots = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    return sorted(snapshots, key=lambda s: version_of(s))


def version_of(snapshot: dict[str, Any]) -> tuple[int, int]:
    major, minor = snapshot["pants_version"].split(".")[:2]
    return int(major), int(minor)


def _call_problem(use: Use, entry: dict[str, Any]) -> str | None:
    if use.call is None:
        return None
    positional, keywords, spread = use.call
    if use.by_name and entry.get("kind") != "rule":
        return f"called by name (**implicitly()), but it is a {entry.get('kind')}, not a rule"
    params = entry.get("params")
    if params is None or spread:
        return None  # no signature recorded (e.g. a Rust class without a stub signature)
    accepts_any_positional = any(kind == "var-positional" for _, kind, _ in params)
    accepts_any_keyword = any(kind == "var-keyword" for _, kind, _ in params)
    named = [p for p in params if p[1] == "positional"]
    if not accepts_any_positional and positional > len(named):
        return f"given {positional} positional arguments, takes at most {len(named)} ({', '.join(p[0] for p in named)})"
    names = {p[0] for p in params if p[1] in ("positional", "keyword")}
    unknown = [k for k in keywords if k not in names]
    if unknown and not accepts_any_keyword:
        return f"no parameter {', '.join(unknown)} (takes {', '.join(sorted(names)) or 'none'})"
    if not use.by_name:
        given = {p[0] for p in named[:positional]} | set(keywords)
        required = [p[0] for p in params if p[1] in ("positional", "keyword") and not p[2] and p[0] not in given]
        if required:
            return f"missing required arguments: {', '.join(required)}"
    return None


def check(uses: Iterable[Use], snapshots: Iterable[dict[str, Any]]) -> list[Problem]:
    problems: list[Problem] = []
    uses = list(uses)
    for snapshot in snapshots:
        version = version_of(snapshot)
        names = snapshot["names"]
        for use in uses:
            if not use.admitted_by(version):
                continue
            entry = names.get(use.key)
            if entry is None:
                problems.append(Problem(snapshot["tag"], use, f"not in the snapshot: regenerate the snapshots ({REGENERATE})"))
                continue
            status = entry["status"]
            if status != "found":
                where = f" (no member at {entry['at']})" if "at" in entry else ""
                problems.append(Problem(
                    snapshot["tag"], use,
                    f"{status}{where}: gate the use behind a PANTS_2_NN boolean in export_dists/engine.py, "
                    "or use a spelling every supported release has",
                ))
                continue
            message = _call_problem(use, entry)
            if message:
                problems.append(Problem(snapshot["tag"], use, message))
    return problems


def main(argv: list[str] | None = None) -> int:
    snapshots = load_snapshots()
    if not snapshots:
        print(f"check.py: no snapshots in {SNAPSHOTS}: run {REGENERATE}", file=sys.stderr)
        return 2
    uses = collect_uses(PLUGIN)
    problems = check(uses, snapshots)
    for problem in problems:
        print(problem)
    tags = ", ".join(s["tag"] for s in snapshots)
    print(f"{len(uses)} uses of Pants checked against {len(snapshots)} releases ({tags}): {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Type-check the plugin against every supported Pants release's own sources (a maintainer command).

    python build-support/pants_api/mypy_per_tag.py --pants-git DIR [LABEL ...]

For each release in tags.txt (or the labels given): `git archive` its src/python (with
`native_engine.pyi`, the stubs of the Rust classes) into ~/.cache/export-dists/pants-src/<label>,
install the `packaging` version that release pins into ~/.cache/export-dists/packaging/<version>
(pip, so network for a version not fetched before), then run mypy over the plugin (tests aside)
with those two on the path, for the Python that release runs on, and with `--always-true` /
`--always-false` for every `PANTS_2_NN` gate of export_dists/engine.py as that release decides it.
Errors inside Pants' own sources are not reported (`--follow-imports=silent`); the plugin's are.
Prints one line per release and the errors; exits 1 if any release has errors. Needs a mypy run by
Python 3.13 or newer (Pants 2.32+ sources use 3.12+ syntax): `--mypy PATH` picks it.

CI does not run this (no clone, no network there); it runs mypy against the installed Pants 2.17.1
(pants-plugins/export_dists/mypy_test.py) and the offline check against the snapshots.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PLUGIN_ROOT = ROOT / "pants-plugins"
# The build-system-neutral core the plugin imports: it runs inside Pants too, on Pants' `packaging`.
CORE_ROOT = ROOT / "core"
ENGINE = PLUGIN_ROOT / "export_dists" / "engine.py"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "export-dists"
sys.path.insert(0, str(HERE))

from snapshot import SNAPSHOTS, read_tags  # noqa: E402


def plugin_modules() -> list[str]:
    """The plugin's modules and the core's (tests aside)."""
    return sorted(
        str(p.relative_to(PLUGIN_ROOT)) if p.is_relative_to(PLUGIN_ROOT) else str(p)
        for p in [*(PLUGIN_ROOT / "export_dists").glob("*.py"), *(CORE_ROOT / "export_dists_core").glob("*.py")]
        if not p.name.endswith("_test.py") and p.name != "conftest.py"
    )


def gates() -> list[int]:
    """The minors of every `PANTS_2_NN = ...` in engine.py."""
    return sorted(int(m) for m in re.findall(r"^PANTS_2_(\d+)\s*=", ENGINE.read_text(), re.MULTILINE))


def gate_flags(pants_version: str) -> list[str]:
    major, minor = (int(x) for x in pants_version.split(".")[:2])
    flags = []
    for gate in gates():
        flags += ["--always-true" if (major, minor) >= (2, gate) else "--always-false", f"PANTS_2_{gate}"]
    return flags


def python_for(python_requires: str | None) -> str:
    """The Python a release runs on, from its `pantsbuild.pants` python_requires."""
    if python_requires and (match := re.match(r"==\s*(3\.\d+)", python_requires)):
        return match.group(1)
    return "3.9"  # 2.17: ">=3.7,<3.10", and its Pants binaries are built for 3.9


def pants_sources(git_dir: str, label: str, commit: str) -> Path:
    target = CACHE / "pants-src" / label
    marker = target / ".commit"
    if marker.is_file() and marker.read_text().strip() == commit:
        return target / "src" / "python"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with tempfile.TemporaryFile() as archive:
        subprocess.run(["git", "-C", git_dir, "archive", commit, "src/python"], stdout=archive, check=True)
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, filter="data")
            else:
                tar.extractall(target)
    marker.write_text(commit + "\n")
    return target / "src" / "python"


def packaging_dir(version: str) -> Path:
    target = CACHE / "packaging" / version
    if not (target / "packaging").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), f"packaging=={version}"],
            check=True,
        )
    return target


def run(mypy: str, git_dir: str, label: str) -> tuple[int, str]:
    snapshot = json.loads((SNAPSHOTS / f"{label}.json").read_text())
    sources = pants_sources(git_dir, label, snapshot["commit"])
    packaging = packaging_dir(snapshot["packaging"])
    python = python_for(snapshot["python_requires"])
    command = [
        mypy,
        "--python-version", python,
        "--no-site-packages",
        "--follow-imports=silent",
        "--ignore-missing-imports",
        "--cache-dir", str(CACHE / "mypy-cache" / label),
        *gate_flags(snapshot["pants_version"]),
        *plugin_modules(),
    ]
    env = {**os.environ, "MYPYPATH": os.pathsep.join([str(PLUGIN_ROOT), str(CORE_ROOT), str(sources), str(packaging)])}
    result = subprocess.run(command, cwd=PLUGIN_ROOT, env=env, capture_output=True, text=True)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    header = (
        f"{label}: Pants {snapshot['pants_version']} ({snapshot['commit'][:10]}), Python {python}, "
        f"packaging {snapshot['packaging']}, {' '.join(gate_flags(snapshot['pants_version']))}: "
        f"{len(errors)} errors"
    )
    if result.returncode not in (0, 1) or (result.returncode == 1 and not errors):
        return 1, header + " (mypy failed)\n" + result.stdout + result.stderr
    return len(errors), header + "".join(f"\n  {e}" for e in errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pants-git", required=True, help="a pantsbuild/pants clone (a bare one will do)")
    parser.add_argument("--mypy", default=shutil.which("mypy") or "mypy", help="the mypy to run")
    parser.add_argument("labels", nargs="*", help="releases to check (default: every one in tags.txt)")
    args = parser.parse_args(argv)
    labels = args.labels or [label for label, _ in read_tags()]
    failed = 0
    for label in labels:
        count, report = run(args.mypy, args.pants_git, label)
        print(report, flush=True)
        failed += count > 0
    print(f"{len(labels) - failed} of {len(labels)} releases without errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The bytes `./pants export-dists ::` writes for two fixed repositories, as sha256 digests per file.

The repositories are made with fixed commit dates and identities, so their commits (and so every
version, wheel and manifest the plugin derives from them) are the same on every machine:

- `example`: examples/monorepo as it was at EXAMPLE_COMMIT (read from this checkout's git history,
  so later edits of the example do not move the reference), a two-commit repository
  (tests/example_repo.py);
- `generated`: a 100-target synthetic monorepo (bench/generate_monorepo.py) with a 10-target chain
  and a 10-member import cycle, one commit.

    python tests/golden_exports.py record   # rewrite tests/fixtures/golden_exports.json
    python tests/golden_exports.py show     # print the digests of this checkout's plugin

`record` is run once at a commit whose output is the reference (the fixture says which); the test
(tests/golden_exports_test.py) then asserts that the plugin of the checkout still writes those bytes.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from contextlib import contextmanager
from typing import Iterator

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.example_repo import REPO_ROOT, PANTS, make_example_repo, pants_environment

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "golden_exports.json"
# The example's sources the fixture was recorded with: the plugin changes, this input does not.
EXAMPLE_COMMIT = "d1481d7"

# Fixed commit metadata: the same commits, shas and versions wherever the repositories are made.
FIXED_GIT_ENV = {
    "GIT_AUTHOR_DATE": "2024-01-02T03:04:05+00:00",
    "GIT_COMMITTER_DATE": "2024-01-02T03:04:05+00:00",
    "GIT_AUTHOR_NAME": "Golden Export",
    "GIT_AUTHOR_EMAIL": "golden@export-dists.invalid",
    "GIT_COMMITTER_NAME": "Golden Export",
    "GIT_COMMITTER_EMAIL": "golden@export-dists.invalid",
}


class GoldenExportError(RuntimeError):
    """Making a golden repository or exporting it failed."""


def _generator() -> object:
    path = REPO_ROOT / "bench" / "generate_monorepo.py"
    spec = importlib.util.spec_from_file_location("generate_monorepo", path)
    if spec is None or spec.loader is None:
        raise GoldenExportError(f"cannot load {path}: is this an export-dists checkout?")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def file_digests(directory: Path) -> dict[str, str]:
    """Every file below `directory`: relative path -> sha256 of its bytes (a symlink: its target)."""
    digests: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_symlink():
            digests[relative] = "symlink:" + os.readlink(path)
        elif path.is_file():
            digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def _export(repo: Path, head: str) -> dict[str, str]:
    result = subprocess.run(
        [str(PANTS), "--no-pantsd", "export-dists", "::"],
        cwd=repo,
        # The example as recorded (EXAMPLE_COMMIT) predates the core's own directory: its pants.toml
        # puts only pants-plugins/ on the pythonpath. The option is not in any wheel.
        env=pants_environment({"PANTS_PYTHONPATH": f"+['{REPO_ROOT / 'core'}']"}),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise GoldenExportError(
            f"`./pants export-dists ::` in {repo} exited with {result.returncode}:\n"
            + "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        )
    export = repo / "dist" / "export-dists" / head
    if not (export / "manifest.json").is_file():
        raise GoldenExportError(f"{export} has no manifest.json after a successful export.")
    return file_digests(export)


@contextmanager
def _fixed_git_env() -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in FIXED_GIT_ENV}
    os.environ.update(FIXED_GIT_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def example_sources(dest: Path) -> Path:
    """examples/monorepo as it was at EXAMPLE_COMMIT, extracted under `dest`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", EXAMPLE_COMMIT, "examples/monorepo"],
        cwd=REPO_ROOT,
        capture_output=True,
    )
    if archive.returncode != 0:
        raise GoldenExportError(
            f"cannot read examples/monorepo at {EXAMPLE_COMMIT} from the git history of {REPO_ROOT}: "
            f"{archive.stderr.decode().strip()}. The golden exports need a clone with its history "
            "(not a shallow one): git fetch --unshallow."
        )
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "examples" / "monorepo"


def golden_exports(workdir: Path) -> dict[str, dict[str, object]]:
    """Make both repositories under `workdir`, export them, return {name: {head, files}}."""
    generate_monorepo = _generator()
    results: dict[str, dict[str, object]] = {}
    source = example_sources(workdir / "example-source")
    with _fixed_git_env():
        example = make_example_repo(workdir / "example", commits=2, source=source)
        generated = generate_monorepo.generate(  # type: ignore[attr-defined]
            workdir / "generated",
            generate_monorepo.Shape(targets=100, chain=10, cycle=10, cycle_density=3),  # type: ignore[attr-defined]
        )
    for name, path, head in (("example", example.path, example.head), ("generated", generated.path, generated.sha)):
        results[name] = {"head": head, "files": _export(path, head)}
    return results


def main(argv: list[str]) -> int:
    if argv not in (["record"], ["show"]):
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="golden-exports-") as tmp:
        results = golden_exports(Path(tmp))
    if argv == ["show"]:
        print(json.dumps(results, indent=1, sort_keys=True))
        return 0
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "pants-plugins", "core"], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    document = {
        "recorded_at_commit": commit + ("+dirty" if dirty else ""),
        "pants_version": "2.17.1",
        "how": "python tests/golden_exports.py record",
        "exports": results,
    }
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = FIXTURE.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    tmp_path.replace(FIXTURE)
    print(f"wrote {FIXTURE} ({sum(len(r['files']) for r in results.values())} files)")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

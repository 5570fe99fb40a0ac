"""export-dists-uv on a generated uv workspace against `uv build --all-packages`, in the same run.

The workspace (`generate`): `members` packages under packages/, a virtual root (no [project]), each
member a hatchling or setuptools package (alternating) with one module, importing up to two earlier
members through `[tool.uv.sources] x = { workspace = true }`, so edits of early members move many
versions. Timed, in this order: `uv build --all-packages --wheel` (its build environments warm from
the first round), export-dists-uv cold (an empty wheel cache), the same commit again (nothing to
do), one commit changing a leaf (nobody depends on it) and one changing the first member (every
member depends on it, through the layers), each exported with the wheel cache the earlier exports
filled; and `uv build --all-packages` again after the change, which builds everything anew.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from generate_monorepo import git
from procs import OUT, ROOT, BenchError, summarize, tail

BACKENDS = (
    ('["hatchling"]', "hatchling.build", '[tool.hatch.build.targets.wheel]\npackages = ["src/{module}"]\n'),
    ('["setuptools>=61"]', "setuptools.build_meta", '[tool.setuptools.packages.find]\nwhere = ["src"]\n'),
)


def generate(dest: Path, members: int) -> Path:
    dest.mkdir(parents=True)
    (dest / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["packages/*"]\n')
    (dest / ".gitignore").write_text("dist/\n")
    for i in range(members):
        name, module = f"bench-m{i:03d}", f"bench_m{i:03d}"
        deps = sorted({f"bench-m{d:03d}" for d in ((i - 1) // 2, i // 3) if i > 0 and d < i})
        requires, backend, extra = BACKENDS[i % 2]
        directory = dest / "packages" / f"m{i:03d}"
        (directory / "src" / module).mkdir(parents=True)
        sources = "".join(f'{d} = {{ workspace = true }}\n' for d in deps)
        (directory / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\nversion = "1.0"\ndependencies = {deps!r}\n\n'
            + (f"[tool.uv.sources]\n{sources}\n" if sources else "")
            + f'[build-system]\nrequires = {requires}\nbuild-backend = "{backend}"\n\n'
            + extra.format(module=module)
        )
        imports = "".join(f"import {d.replace('-', '_')}\n" for d in deps)
        (directory / "src" / module / "__init__.py").write_text(f"{imports}VALUE = {i}\n")
    git(dest, "init", "--quiet", "--initial-branch", "main")
    git(dest, "add", "--all")
    git(dest, "commit", "--quiet", "--message", "a generated uv workspace")
    return dest


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    if os.path.exists(bundle):
        env.setdefault("SSL_CERT_FILE", bundle)
    return env


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({result.returncode}):\n{tail(result.stdout + result.stderr)}")
    return seconds, result.stderr


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def _edit(repo: Path, member: int) -> None:
    path = repo / "packages" / f"m{member:03d}" / "src" / f"bench_m{member:03d}" / "__init__.py"
    path.write_text(path.read_text() + f"EDITED = {time.time_ns()}\n")
    git(repo, "commit", "--quiet", "--all", "--message", f"edit m{member:03d}")


def run(members: int, reps: int, log: Callable[[str], None]) -> dict[str, Any]:
    work = OUT / "uv-workspace"
    shutil.rmtree(work, ignore_errors=True)
    env = _env()
    exporter_env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT / "uv-exporter"), str(ROOT / "core")])}
    uv = _uv()
    times: dict[str, list[float]] = {}
    built: dict[str, str] = {}
    load_before = os.getloadavg()[0]

    def export(label: str, repo: Path, cache: Path, out: Path) -> None:
        seconds, stderr = _timed([sys.executable, "-m", "export_dists_uv", str(repo), "--cache-dir", str(cache),
                                  "--output-dir", str(out)], repo, exporter_env)
        times.setdefault(label, []).append(seconds)
        built[label] = stderr.strip().splitlines()[-1].split("; ", 1)[-1].split(")", 1)[0]

    def uv_build(label: str, repo: Path, n: int) -> None:
        # In a clone: setuptools writes build/ and *.egg-info beside the sources, which would make the
        # exporter's work tree dirty (export-dists-uv builds from a snapshot for that reason).
        clone = work / f"uv-clone-{n}"
        subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
        seconds, _ = _timed([uv, "build", "--all-packages", "--wheel", "--out-dir", str(work / f"uv-out-{n}")], clone, env)
        times.setdefault(label, []).append(seconds)

    for n in range(reps):
        repo = generate(work / f"repo-{n}", members)
        cache, out = work / f"cache-{n}", work / f"out-{n}"
        log(f"uv workspace round {n + 1}/{reps}: {members} members")
        uv_build("uv build --all-packages", repo, n)
        export("export-dists-uv, cold (empty wheel cache)", repo, cache, out)
        export("export-dists-uv, the same commit again", repo, cache, out)
        _edit(repo, members - 1)
        export("export-dists-uv, one leaf member changed", repo, cache, out)
        _edit(repo, 0)
        export("export-dists-uv, the first member changed (all depend on it)", repo, cache, out)
        uv_build("uv build --all-packages, after the change", repo, n + 1000)
    version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "members": members,
        "uv": version,
        # Other work on the machine moves every row: the 1-minute load average around the run.
        "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "rows": [{"step": label, "seconds": summarize(values), "built": built.get(label, "")} for label, values in times.items()],
    }


def section(payload: dict[str, Any], fmt: Callable[..., str], table: Callable[..., str]) -> list[str]:
    """The report's section for this part (report.py calls it with its own formatters)."""
    d = payload["data"]
    rows = [[r["step"], fmt(r["seconds"], "s"), r["built"] or "every member"] for r in d["rows"]]
    return [
        "## uv workspaces",
        "",
        f"Started {payload['started']}. A generated uv workspace of {d['members']} members "
        "(`bench/uv_workspace_bench.py`: hatchling and setuptools alternating, each importing up to two "
        "earlier members as workspace sources, a virtual root), one commit. Per round, in this order: "
        "`uv build --all-packages --wheel`, then `export-dists-uv` (2 parallel builds, the machine's cores) "
        "cold, the same commit again, after a commit to a leaf member, after a commit to the first member "
        "(every member depends on it through the layers: all versions move, only it is rebuilt, the others "
        f"are restamped from the wheel cache), then `uv build --all-packages` again. {d['uv']}; "
        f"{payload['settings']['reps']} round(s), fresh repository each"
        + (f"; load average {d['load'][0]} before, {d['load'][1]} after (1 min, 2 cores)." if "load" in d else "."),
        "",
        table(["step", "seconds", "built"], rows),
        "",
    ]

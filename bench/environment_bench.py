"""Installs of a target with a large first-party closure against its environment dist, through the relay.

Two shapes from generate_monorepo.py, each with a top target whose closure is `closure` dists:
**wide** (a layered graph; the top imports every target nothing else imports, so its closure is the
whole repository, a few levels deep) and **deep** (a chain: each dist requires the next). An
`export_dists_environment` over the top target pins the same dists `==` in one Requires-Dist. pip
and uv install the top target, then the environment, into fresh venvs, interleaved in rounds.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import servers
from generate_monorepo import GeneratedRepo, Shape, generate, git
from install_bench import _install_once
from procs import OUT, PANTS, BenchError, pants_env, summarize, tail

ENVIRONMENT = "monorepo.envs.top"


def _wide(closure: int) -> Shape:
    return Shape(targets=closure - 1, depth=3, fan_out=3, third_party_share=0.0)


def _deep(closure: int) -> Shape:
    return Shape(targets=closure, chain=closure, third_party_share=0.0)


def _add_top_and_environment(repo: GeneratedRepo, shape_name: str) -> str:
    """Commit the top target (wide: a new one importing every root) and an environment over it."""
    if shape_name == "deep":
        assert repo.chain_head is not None
        top_directory = "src/python/gen/chain/c00"
        top = repo.chain_head
    else:
        imported = {dep for t in repo.targets for dep in t.deps}
        roots = sorted(t.module for t in repo.targets if t.module not in imported)
        top_directory = "src/python/gen/top"
        top = "monorepo.src.python.gen.top"
        directory = repo.path / top_directory
        directory.mkdir(parents=True)
        (directory / "BUILD").write_text("python_sources()\n")
        (directory / "__init__.py").write_text("")
        (directory / "m0.py").write_text("".join(f"from {m} import m0 as dep{i}\n" for i, m in enumerate(roots)))
    (repo.path / "envs").mkdir()
    (repo.path / "envs" / "BUILD").write_text(
        f'export_dists_environment(name="top", dependencies=["{top_directory}"])\n'
    )
    git(repo.path, "add", "--all")
    git(repo.path, "commit", "--quiet", "--message", "A top target and an environment over it")
    return top


def _export(repo_path: Path, store: Path, work: Path) -> str:
    env = pants_env({"PANTS_WORKDIR": str(work / "pants.d")})
    result = subprocess.run(
        [str(PANTS), "--no-pantsd", "export-dists", f"--export-dists-output-dir={store}", "::"],
        cwd=repo_path, env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise BenchError(f"exporting {repo_path} failed:\n{tail(result.stderr)}")
    return git(repo_path, "rev-parse", "HEAD")


def run(closure: int, reps: int, python: str, log: Callable[[str], None]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    requires: dict[str, dict[str, int]] = {}
    for shape_name, shape in (("wide", _wide(closure)), ("deep", _deep(closure))):
        work = OUT / "environments" / shape_name
        shutil.rmtree(work, ignore_errors=True)
        repo = generate(work / "monorepo", shape)
        top = _add_top_and_environment(repo, shape_name)
        store = work / "store"
        log(f"environments: exporting the {shape_name} monorepo ({closure}-dist closure)")
        sha = _export(repo.path, store, work)
        manifest = json.loads((store / sha / "manifest.json").read_text())
        by_name = {d["name"]: d for d in manifest["dists"]}
        if len(by_name[ENVIRONMENT]["requires_dist"]) != closure:
            raise BenchError(f"the environment of the {shape_name} shape pins "
                             f"{len(by_name[ENVIRONMENT]['requires_dist'])} dists, expected {closure}")
        requires[shape_name] = {
            "top_requires_dist": len(by_name[top]["requires_dist"]),
            "environment_requires_dist": len(by_name[ENVIRONMENT]["requires_dist"]),
            "environment_metadata_bytes": by_name[ENVIRONMENT]["metadata_size"],
        }
        base = servers.load_corpus(store, sha, top)
        corpora = {
            "top target": replace(base, install_name=top, install_count=closure),
            "environment": replace(base, install_name=ENVIRONMENT, install_count=closure + 1),
        }
        index = servers.relay(base, work, auth=False)
        times: dict[tuple[str, str], list[float]] = {}
        counts: dict[tuple[str, str], dict[str, int]] = {}
        try:
            for _ in range(reps):
                for client in ("pip", "uv"):
                    for what, corpus in corpora.items():
                        seconds, seen = _install_once(index, corpus, client, python)
                        times.setdefault((what, client), []).append(seconds)
                        if seen is not None:
                            counts[(what, client)] = seen
        finally:
            index.server.stop()
        for client in ("pip", "uv"):
            for what, corpus in corpora.items():
                row = {"shape": shape_name, "client": client, "install": what, "name": corpus.install_name,
                       "dists": corpus.install_count, "seconds": summarize(times[(what, client)]),
                       "requests": counts.get((what, client))}
                log(f"environments: {client} install of the {shape_name} {what} ({corpus.install_count} dists): "
                    f"{row['seconds']['median']:.2f} s")
                rows.append(row)
    return {"closure": closure, "rows": rows, "requires": requires}


def section(payload: dict[str, Any], fmt: Callable[..., str], table: Callable[..., str]) -> list[str]:
    """The report's section for this part (report.py calls it with its own formatters)."""
    d = payload["data"]
    s = payload["settings"]
    closure = d["closure"]
    medians = {(r["shape"], r["client"], r["install"]): r["seconds"].get("median") for r in d["rows"]}
    rows = []
    for r in d["rows"]:
        req = r.get("requests")
        ratio = ""
        if r["install"] == "environment":
            top = medians.get((r["shape"], r["client"], "top target"))
            if top and r["seconds"].get("median"):
                ratio = f"{r['seconds']['median'] / top:.2f}x of the top target"
        rows.append([r["shape"], r["client"], f"`{r['name']}`", str(r["dists"]), fmt(r["seconds"], "s"),
                     f"{req['pages']} pages, {req['metadata']} .metadata, {req['whl']} wheels" if req else "-",
                     ratio])
    shapes = d["requires"]
    return [
        "## Environment dists",
        "",
        f"Started {payload['started']}. Two synthetic monorepos (`bench/generate_monorepo.py`, no third-party "
        f"requirements) whose top target has a first-party closure of {closure} dists: **wide** (layers "
        f"of depth 3, fan-out 3; the top imports the {shapes['wide']['top_requires_dist']} targets nothing "
        f"else imports) and **deep** (a chain: each dist requires the next, the top requires "
        f"{shapes['deep']['top_requires_dist']}). An `export_dists_environment` over the top target pins all "
        f"{closure} `==` in one Requires-Dist ({shapes['deep']['environment_metadata_bytes']:,} bytes of metadata). "
        "Each exported with `./pants export-dists ::` and served by one relay (`/main/simple/`); installs "
        f"as in *Installs* (fresh venv, no cache), {s['reps']} rounds, each installing the top target and "
        "the environment with pip and with uv in turn. The environment install also installs the "
        "environment dist itself (one more).",
        "",
        table(["shape", "client", "installs", "dists", "seconds", "relay requests", ""], rows),
        "",
        "Both installs make the same requests: one page, one `.metadata` and one wheel per dist. Knowing "
        "every pin from the first metadata file saves pip and uv no request (each still reads every "
        "dist's metadata for its own requirements), so a flat Requires-Dist is not a lever for install "
        "time; compare the ratios with the min-max spread of each row before reading more into them. "
        "An environment is for its first purpose: one name for a consistent set.",
        "",
    ]

"""Fixture exports for tests: real wheels, .metadata files and a manifest, written per the contract."""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import secrets
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence
from urllib.parse import quote

from packaging.utils import canonicalize_name

from relay.building.builders import pantsd_pid
from relay.index import render
from relay.contract import CONTENT_FORMAT, FORMAT, MANIFEST, Dist, Export, manifest_json

_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class DistSpec:
    """A fixture dist: its top module is the name with dots as underscores (monorepo.a -> monorepo_a)."""

    name: str
    # Other fixture dists it needs (pinned to the export's version) and third-party requirements.
    requires: tuple[str, ...] = ()
    third_party: tuple[str, ...] = ()
    requires_python: str | None = ">=3.7"
    # Modules its code imports beyond `requires` (a dist that does not declare what it imports).
    imports: tuple[str, ...] = ()
    # More files it ships (wheel path, text), e.g. ("textkit/core/stats.py", "..."), and whether it
    # is an environment dist (its export_dists.json says so; it ships no module of its own).
    files: tuple[tuple[str, str], ...] = ()
    environment: bool = False

    @property
    def module(self) -> str:
        return self.name.replace(".", "_").replace("-", "_")


# A 3-deep chain, so an installer must follow Requires-Dist through the index.
CHAIN = (
    DistSpec("monorepo.chain.a", requires=("monorepo.chain.b",)),
    DistSpec("monorepo.chain.b", requires=("monorepo.chain.c",)),
    DistSpec("monorepo.chain.c"),
    DistSpec("monorepo.tools"),
)


def version_of(sha: str, count: int, dirty: bool = False) -> str:
    return f"0.{count}+g{sha[:12]}" + (".dirty" if dirty else "")


def _wheel(spec: DistSpec, version: str, sha: str, metadata: bytes, address: str) -> tuple[str, bytes]:
    escaped = canonicalize_name(spec.name).replace("-", "_")
    dist_info = f"{escaped}-{version}.dist-info"
    modules = [DistSpec(r).module for r in spec.requires] + list(spec.imports)
    imports = "".join(f"import {module}  # noqa: F401\n" for module in modules)
    info: dict[str, object] = {"sha": sha, "address": address, "namespace": "monorepo", "version": version}
    if spec.environment:
        info["environment"] = True
    files = {} if spec.environment else {
        f"{spec.module}/__init__.py": f'{imports}SHA = "{sha}"\nVERSION = "{version}"\n'.encode(),
    }
    files.update({path: text.encode() for path, text in spec.files})
    files.update({
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: relay.testing\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ).encode(),
        f"{dist_info}/export_dists.json": json.dumps(info, sort_keys=True).encode(),
    })
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name in sorted(files):
            entry = zipfile.ZipInfo(name, _ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            wheel.writestr(entry, files[name])
    return f"{escaped}-{version}-py3-none-any.whl", buffer.getvalue()


def _write_dist(
    directory: Path, spec: DistSpec, version: str, sha: str, requires: Sequence[str], *, content: bool
) -> Dist:
    """Write one dist's wheel and .metadata file into `directory`; its manifest entry."""
    lines = ["Metadata-Version: 2.1", f"Name: {spec.name}", f"Version: {version}"]
    if spec.requires_python:
        lines.append(f"Requires-Python: {spec.requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    metadata = ("\n".join(lines) + "\n").encode()
    address = spec.name.replace(".", "/") + ":" + spec.name.rsplit(".", 1)[-1]
    filename, data = _wheel(spec, version, sha, metadata, address)
    (directory / filename).write_bytes(data)
    (directory / (filename + ".metadata")).write_bytes(metadata)
    return Dist(
        name=spec.name,
        project=canonicalize_name(spec.name),
        version=version,
        filename=filename,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        metadata_sha256=hashlib.sha256(metadata).hexdigest(),
        metadata_size=len(metadata),
        requires_dist=tuple(requires),
        requires_python=spec.requires_python,
        address=address,
        origin=sha if content else None,
        fingerprint=hashlib.sha256(data).hexdigest() if content else None,
    )


def write_history(
    out: Path,
    dists: int,
    exports: int,
    *,
    namespace: str = "monorepo.gen",
    third_party: tuple[str, ...] = ("attrs>=22.2", "requests>=2.31,<3"),
    branches: Sequence[str] = ("main",),
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Write `exports` content-versioned exports of `dists` dists, quickly: commit i (1-based) changes
    one dist (dist (i - 2) mod `dists`, from the second commit on) and the others keep their version
    and bytes, hard-linked from the export before, as the goal links unchanged wheels. Returns the
    export keys, oldest first. Unlike `write_export` there is no static `simple/` tree (the relay
    never reads it), so a month of main (1,500 exports of 1,000 dists) takes about a minute.
    """
    specs = [DistSpec(f"{namespace}.d{i:05d}", third_party=third_party) for i in range(dists)]
    keys: list[str] = []
    entries: list[Dist] = []
    previous: Path | None = None
    for n in range(1, exports + 1):
        sha = fake_sha(n)
        staging = out / f".tmp-{sha}-{secrets.token_hex(4)}"
        staging.mkdir(parents=True)
        if previous is None:
            entries = [
                _write_dist(staging, spec, version_of(sha, n), sha, spec.third_party, content=True) for spec in specs
            ]
        else:
            changed = (n - 2) % dists
            for i, dist in enumerate(entries):
                if i == changed:
                    entries[i] = _write_dist(
                        staging, specs[i], version_of(sha, n), sha, specs[i].third_party, content=True
                    )
                    continue
                for filename in (dist.filename, dist.metadata_filename):
                    os.link(previous / filename, staging / filename)
        export = Export(
            sha=sha,
            version=version_of(sha, n),
            count=n,
            namespace=namespace.split(".", 1)[0],
            dirty=False,
            branches=tuple(branches),
            tags=(),
            commit_time=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(1_700_000_000 + 600 * n)),
            dists=tuple(entries),
            format=CONTENT_FORMAT,
        )
        (staging / MANIFEST).write_text(manifest_json(export))
        previous = out / export.key
        os.rename(staging, previous)
        keys.append(export.key)
        if progress is not None:
            progress(n)
    return keys


def write_export(
    out: Path,
    sha: str,
    count: int,
    dists: Sequence[DistSpec] = CHAIN,
    *,
    branches: Sequence[str] = ("main",),
    tags: Sequence[str] = (),
    namespace: str = "monorepo",
    dirty: bool = False,
    origins: Mapping[str, tuple[str, int]] | None = None,
) -> Export:
    """Write `<out>/<sha>/` as the goal does (atomically, manifest last) and return its Export.

    With `origins` (dist name -> the sha and count its version names), the export is format 2
    (version_scheme = "content"): a dist with the same origin has the same bytes in every export.
    Dists it does not name have the export's own commit as origin.
    """
    version = version_of(sha, count, dirty)
    staging = out / f".tmp-{sha}-{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    entries = []
    origin_of = {spec.name: (origins or {}).get(spec.name, (sha, count)) for spec in dists}
    versions = {name: version_of(*origin) if origin != (sha, count) else version for name, origin in origin_of.items()}
    for spec in dists:
        dist_sha, dist_version = origin_of[spec.name][0], versions[spec.name]
        requires = [f"{r}=={versions.get(r, version)}" for r in spec.requires] + list(spec.third_party)
        entries.append(_write_dist(staging, spec, dist_version, dist_sha, requires, content=origins is not None))
    export = Export(
        sha=sha,
        version=version,
        count=count,
        namespace=namespace,
        dirty=dirty,
        branches=tuple(branches),
        tags=tuple(tags),
        commit_time=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        dists=tuple(sorted(entries, key=lambda d: d.project)),
        format=CONTENT_FORMAT if origins is not None else FORMAT,
    )
    _write_simple_tree(staging, export)
    (staging / MANIFEST).write_text(manifest_json(export))
    os.rename(staging, out / export.key)
    return export


def _write_simple_tree(directory: Path, export: Export) -> None:
    simple = directory / "simple"
    simple.mkdir()
    (simple / "index.html").write_bytes(render.render(render.root_page([export]), render.TEXT_HTML).body)
    for dist in export.dists:
        page = render.project_page(dist.project, [export], lambda key, f: "../../" + quote(f, safe=""))
        assert page is not None
        (simple / dist.project).mkdir()
        (simple / dist.project / "index.html").write_bytes(render.render(page, render.TEXT_HTML).body)


def fake_sha(n: int) -> str:
    return hashlib.sha1(str(n).encode()).hexdigest()


def start_stand_in_daemon(worktree: Path) -> None:
    """A process that the warm builder takes for the worktree's Pants daemon: its command line says
    pantsd and its pid is in .pids/<id>/pantsd/pid; it outlives the build (its own session), as pantsd."""
    if pantsd_pid(worktree) is not None:
        return
    pid_file = worktree / ".pids" / "stand-in" / "pantsd" / "pid"
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    daemon = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "pantsd"], start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    pid_file.write_text(str(daemon.pid))


def main(argv: Sequence[str] | None = None) -> int:
    """A stand-in for `pants export-dists` in pull-mode tests: writes CHAIN for the worktree's commit."""
    parser = argparse.ArgumentParser(prog="python -m relay_testing.exports")
    parser.add_argument("--worktree", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--runs-file", type=Path, help="append one line per run (tests count runs)")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--pantsd", action="store_true",
                        help="start a stand-in Pants daemon for the worktree unless one runs (warm builder tests)")
    parser.add_argument("--trees-file", type=Path, help="append the worktree's name per run")
    parser.add_argument("--shas-file", type=Path, help="append the commit (RELAY_SHA) per run")
    parser.add_argument("--wait-while", type=Path, metavar="FILE",
                        help="in a worktree named worktree-2 (a warm-up), wait while FILE exists")
    args = parser.parse_args(argv)
    if args.runs_file:
        with open(args.runs_file, "a") as f:
            f.write("run\n")
    if args.trees_file:
        with open(args.trees_file, "a") as f:
            f.write(args.worktree.name + "\n")
    if args.shas_file:
        with open(args.shas_file, "a") as f:
            f.write(os.environ.get("RELAY_SHA", "?") + "\n")
    if args.pantsd:
        start_stand_in_daemon(args.worktree)
    while args.wait_while and args.worktree.name == "worktree-2" and args.wait_while.exists():
        time.sleep(0.05)
    time.sleep(args.sleep)
    if args.fail:
        print("building failed: this is the failure the test expects", file=sys.stderr)
        return 3
    git = ["git", "-C", str(args.worktree)]
    sha = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    count = int(
        subprocess.run(
            git + ["rev-list", "--first-parent", "--count", "HEAD"], check=True, capture_output=True, text=True
        ).stdout
    )
    write_export(args.output_dir, sha, count, branches=())
    print(f"exported {sha} as {version_of(sha, count)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Installs of a strongly connected cycle of dists with pip 23.0.1, current pip and uv, time-bounded.

For each cycle shape (size, how many members each member requires) a synthetic monorepo is exported
with `pants export-dists ::`, then its first member is installed from the export directory
(`--no-index --find-links`, no cache, a new venv) by each client, killed after `timeout` seconds.
The same cycle is also measured in the representation tried and not adopted (docs/design.md): one
wheel holding every member's files, and each member a thin dist that requires it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable

from generate_monorepo import Shape, generate
from procs import OUT, PANTS, ROOT, BenchError, pants_env

sys.path.insert(0, str(ROOT / "core"))
from export_dists_core.wheel import CoreMetadata, build_wheel  # noqa: E402 (plain Python, no Pants needed)

OLD_PIP = "23.0.1"  # the oldest pip the product promises (docs/design.md)
WORK = OUT / "cycles"


def _client_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update({"PIP_CONFIG_FILE": "/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_NO_CONFIG": "1"})
    return env


def _pip_cert(python: Path) -> str | None:
    """The CA bundle this machine's pip configuration names, kept when the configuration is not."""
    if os.environ.get("PIP_CERT"):
        return os.environ["PIP_CERT"]
    listed = subprocess.run([str(python), "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        if line.startswith("global.cert="):
            return line.split("=", 1)[1].strip("'\"")
    return None


def old_pip() -> Path:
    """A venv holding pip OLD_PIP (from PyPI, once): the python that runs it."""
    venv = OUT / f"pip-{OLD_PIP}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([str(OUT / "venv" / "bin" / "python"), "-m", "venv", str(venv)], check=True)
        cert = _pip_cert(OUT / "venv" / "bin" / "python")
        env = {**_client_env(), **({"PIP_CERT": cert} if cert else {})}
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"pip=={OLD_PIP}"], check=True, env=env)
        (venv / ".complete").touch()
    return python


def _version(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()[1]


def clients() -> dict[str, Callable[[Path, Path, str], list[str]]]:
    """Client label -> argv for (venv python, find-links directory, requirement)."""
    old = old_pip()
    new = OUT / "venv" / "bin" / "python"
    uv = OUT / "venv" / "bin" / "uv"

    def pip(python: Path) -> Callable[[Path, Path, str], list[str]]:
        return lambda venv, links, req: [str(python), "-m", "pip", "--python", str(venv), "install", "-q",
                                         "--no-cache-dir", "--no-index", "--find-links", str(links), req]

    return {
        f"pip {_version([str(old), '-m', 'pip', '--version'])}": pip(old),
        f"pip {_version([str(new), '-m', 'pip', '--version'])}": pip(new),
        f"uv {_version([str(uv), '--version'])}": lambda venv, links, req: [
            str(uv), "pip", "install", "-q", "--no-cache", "--python", str(venv), "--no-index",
            "--find-links", str(links), req],
    }


def install(argv_for: Callable[[Path, Path, str], list[str]], links: Path, requirement: str,
            timeout: float) -> dict[str, object]:
    """One install into a new venv: seconds and dists installed, or `timed_out` (the client is killed)."""
    venv = WORK / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([str(OUT / "venv" / "bin" / "python"), "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    try:
        return _timed_install(argv_for(python, links, requirement), python, requirement, timeout)
    finally:
        # Nothing of it stays: uv leaves a `.lock` in the venv, which the repository's lockfile checks glob.
        shutil.rmtree(venv, ignore_errors=True)


def _timed_install(argv: list[str], python: Path, requirement: str, timeout: float) -> dict[str, object]:
    started = time.monotonic()
    process = subprocess.Popen(argv, env=_client_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return {"timed_out": True, "seconds": timeout}
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise BenchError(f"installing {requirement} failed:\n{output[-2000:]}")
    listing = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(len(list(m.distributions())))"],
                             capture_output=True, text=True, check=True)
    return {"seconds": round(seconds, 2), "installed": int(listing.stdout)}


def one_wheel_per_cycle(export_dir: Path, members: set[str], dest: Path) -> None:
    """The cycle as one wheel holding every member's files, each member a thin dist requiring it."""
    manifest = json.loads((export_dir / "manifest.json").read_text())
    dest.mkdir(parents=True)
    cycle = [d for d in manifest["dists"] if d["project"] in members]
    version = cycle[0]["version"]
    files: dict[str, bytes] = {}
    for dist in cycle:
        with zipfile.ZipFile(export_dir / dist["filename"]) as archive:
            for name in archive.namelist():
                if ".dist-info/" not in name:
                    files[name] = archive.read(name)
    hub = cycle[0]["name"] + ".cycle"
    outside = sorted({r for d in cycle for r in d["requires_dist"] if r.split("==")[0].lower().replace(".", "-")
                      not in members})
    wheels = [build_wheel(CoreMetadata(hub, version, "the cycle's files", tuple(outside)), files, timestamp=0)]
    wheels += [build_wheel(CoreMetadata(d["name"], version, "thin", (f"{hub}=={version}",)), {}, timestamp=0)
               for d in cycle]
    for wheel in wheels:
        (dest / wheel.filename).write_bytes(wheel.content)


def verify_export(export_dir: Path, installer: str, timeout: float) -> dict[str, object]:
    """`export-dists-relay verify EXPORT_DIR` over every dist of the export: its seconds and what it printed."""
    argv = [str(OUT / "venv" / "bin" / "python"), "-m", "relay", "verify", str(export_dir),
            "--installer", installer, "--jobs", "2", "--timeout", str(timeout)]
    env = {**_client_env(), "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    result = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    lines = result.stdout.splitlines()
    used = next((line[len("installing with "):] for line in lines if line.startswith("installing with ")), installer)
    return {"seconds": round(seconds, 1), "summary": lines[-1] if lines else result.stderr[-300:],
            "installer": used, "ok": result.returncode == 0}


def run(sizes: tuple[int, ...], densities: tuple[int, ...], timeout: float, log) -> list[dict[str, object]]:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    argv_by_client = clients()
    rows: list[dict[str, object]] = []
    for size in sizes:
        for density in densities:
            shape = Shape(targets=size, cycle=size, cycle_density=density, third_party_share=0.0)
            repo = generate(WORK / f"repo-{size}-{density}", shape)
            store = WORK / f"store-{size}-{density}"
            log(f"exporting a {size}-dist cycle, each member requiring {density}")
            result = subprocess.run(
                [str(PANTS), "--no-pantsd", "export-dists", f"--export-dists-output-dir={store}", "::"],
                cwd=repo.path, env=pants_env({"PANTS_WORKDIR": str(WORK / "pants.d")}),
                capture_output=True, text=True)
            if result.returncode != 0:
                raise BenchError(f"exporting the cycle failed:\n{result.stderr[-3000:]}")
            if "dependency cycle" not in result.stderr:
                raise BenchError("the export did not report the cycle:\n" + result.stderr[-3000:])
            export_dir = store / repo.sha
            assert repo.cycle_head is not None
            members = {t.project for t in repo.targets}
            hub_dir = WORK / f"one-wheel-{size}-{density}"
            one_wheel_per_cycle(export_dir, members, hub_dir)
            # `relay verify` of the whole export (each dist alone in a fresh venv), with each installer.
            for installer in ("uv", "pip"):
                measured = verify_export(export_dir, installer, timeout)
                log(f"{size}/{density} relay verify --installer {installer}: {measured}")
                rows.append({"size": size, "density": density, "representation": "export-dists-relay verify of every dist",
                             "client": measured["installer"], "timeout": timeout, "verify": True, **measured})
            for representation, links in (("one wheel per dist (as exported)", export_dir),
                                          ("one wheel per cycle + thin member dists (not adopted)", hub_dir)):
                for client, argv_for in argv_by_client.items():
                    measured = install(argv_for, links, repo.cycle_head, timeout)
                    log(f"{size}/{density} {representation} {client}: {measured}")
                    rows.append({"size": size, "density": density, "representation": representation,
                                 "client": client, "timeout": timeout, **measured})
    return rows

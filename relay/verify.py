"""`relay verify`: install each dist of an export alone into a fresh venv and import what it ships."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from packaging.utils import InvalidName, canonicalize_name

from relay.contract import ContractError, read_export

PEP691_JSON = "application/vnd.pypi.simple.v1+json"

# Run with `python -I` inside the fresh venv: imports every module the installed dist ships (packages
# before their submodules) and checks that its other files are on disk. Prints one JSON object.
_CHECK_SCRIPT = r"""
import importlib, importlib.metadata, json, re, sys, traceback
def normalize(name):
    return re.sub(r"[-_.]+", "-", name or "").lower()
# Python 3.9's importlib.metadata.distribution() does not normalize dots: match names by PEP 503.
dist = next(d for d in importlib.metadata.distributions() if normalize(d.metadata["Name"]) == normalize(sys.argv[1]))
modules, resources, missing = [], 0, []
for path in dist.files or ():
    parts = path.parts
    if not parts or parts[0] == ".." or parts[0].endswith((".dist-info", ".data")) or "__pycache__" in parts:
        continue
    if not dist.locate_file(path).exists():
        missing.append(str(path))
    elif path.suffix == ".py":
        module = list(parts[:-1]) + ([] if path.stem == "__init__" else [path.stem])
        if module and path.stem != "__main__":
            modules.append(".".join(module))
    else:
        resources += 1
try:
    info = json.loads(dist.read_text("export_dists.json") or "{}")
except ValueError:
    info = {}
result = {"version": dist.version, "sha": info.get("sha"), "modules": sorted(set(modules)),
          "resources": resources, "missing": missing, "error": None,
          "environment": bool(info.get("environment"))}
for module in result["modules"]:
    try:
        importlib.import_module(module)
    except BaseException:
        lines = traceback.format_exc().strip().splitlines()
        result["error"] = f"import {module}: {lines[-1]}"
        break
if missing and result["error"] is None:
    result["error"] = "files not installed: " + ", ".join(missing)
# An environment dist (export_dists_environment) ships no files: it installs its set.
if not result["modules"] and not resources and result["error"] is None and not result["environment"]:
    result["error"] = "the dist installs no modules and no files"
print(json.dumps(result))
"""


class VerifyError(RuntimeError):
    """Bad input to `relay verify`: the message says which input and what to do."""


@dataclass(frozen=True)
class Target:
    """A dist to check and the requirement that installs exactly it."""

    name: str
    requirement: str
    requires_python: str | None = None  # known for an export directory (its manifest), not an index


@dataclass(frozen=True)
class Source:
    """Where dists come from: pip arguments plus the list of dists to check."""

    description: str
    pip_args: tuple[str, ...]
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Outcome:
    name: str
    ok: bool
    detail: str


def export_source(directory: Path, extra_pip_args: Sequence[str] = ()) -> Source:
    """An export directory: its manifest lists the dists; pip finds them with --find-links."""
    try:
        export = read_export(directory)
    except ContractError as e:
        raise VerifyError(f"{directory} is not an export directory: {e}") from None
    targets = tuple(Target(d.name, f"{d.name}=={d.version}", d.requires_python) for d in export.dists)
    return Source(
        description=f"export {directory} (commit {export.sha[:12]}, version {export.version})",
        pip_args=("--find-links", str(directory.resolve()), *extra_pip_args),
        targets=targets,
    )


def index_source(index_url: str, extra_pip_args: Sequence[str] = (), timeout: float = 600.0) -> Source:
    """A relay index such as http://HOST/main/simple/: its root page lists the dists (PEP 691 JSON)."""
    root = index_url.rstrip("/") + "/"
    request = urllib.request.Request(_without_credentials(root), headers={"Accept": PEP691_JSON})
    credentials = _credentials(root)
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    try:
        # A pull-mode relay builds a commit's export on its first request: that can take minutes.
        with urllib.request.urlopen(request, timeout=timeout) as response:
            page = json.loads(response.read())
    except (OSError, ValueError) as e:
        raise VerifyError(
            f"cannot read the index {_without_credentials(root)}: {e}. Give the simple index of a relay "
            "ref, e.g. http://HOST:8080/main/simple/"
        ) from None
    names = [p["name"] for p in page.get("projects", []) if isinstance(p, dict) and "name" in p]
    # The names go to pip's command line: one that is not a project name (`-rhttp://...`) is refused.
    invalid = [repr(n) for n in names if not isinstance(n, str) or not _valid_name(n)]
    if invalid:
        raise VerifyError(
            f"the index {_without_credentials(root)} lists {', '.join(invalid[:5])}: not a valid project "
            "name (PEP 508); is it a relay index?"
        )
    if not names:
        raise VerifyError(f"the index {_without_credentials(root)} lists no projects")
    return Source(
        description=f"index {_without_credentials(root)}",
        pip_args=("--index-url", root, *extra_pip_args),
        targets=tuple(Target(n, n) for n in sorted(names, key=canonicalize_name)),
    )


def select(source: Source, names: Sequence[str]) -> Source:
    """Only the named dists (by PEP 503 name); an unknown name is an error."""
    if not names:
        return source
    by_project = {canonicalize_name(t.name): t for t in source.targets}
    unknown = [n for n in names if canonicalize_name(n) not in by_project]
    if unknown:
        raise VerifyError(
            f"{', '.join(unknown)}: not in the {source.description}; it has "
            + ", ".join(t.name for t in source.targets)
        )
    chosen = tuple(by_project[canonicalize_name(n)] for n in names)
    return Source(source.description, source.pip_args, chosen)


@dataclass(frozen=True)
class Installer:
    """How venvs are made and filled: one shared pip driving pip-less venvs (`pip --python`, pip
    22.3+), or, with an older pip, a pip inside every venv."""

    python: str
    shared_pip: str | None

    @classmethod
    def prepare(cls, python: str, work_dir: Path, env: dict[str, str], timeout: float) -> "Installer":
        tool = work_dir / "pip-venv"
        made = _run([python, "-m", "venv", str(tool)], env, timeout, cwd=work_dir)
        if made.returncode != 0:
            raise VerifyError(f"cannot create a virtualenv with --python {python}: {_last_line(made)}")
        pip = str(tool / "bin" / "python")
        version = _run([pip, "-m", "pip", "--version"], env, timeout, cwd=work_dir).stdout.split()
        try:
            shared = tuple(int(p) for p in version[1].split(".")[:2]) >= (22, 3)
        except (IndexError, ValueError):
            shared = False
        return cls(python, pip if shared else None)

    def venv(self, dest: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        # Without pip the venv holds exactly the dist and its requirements, and is made in a blink.
        flags = ["--without-pip"] if self.shared_pip else []
        return _run([self.python, "-m", "venv", *flags, str(dest)], env, timeout, cwd=dest.parent)

    def pip_install(self, venv_python: str) -> list[str]:
        if self.shared_pip:
            return [self.shared_pip, "-m", "pip", "--python", venv_python, "install"]
        return [venv_python, "-m", "pip", "install"]


def check_dist(target: Target, source: Source, installer: Installer, work_dir: Path, timeout: float) -> Outcome:
    """Make a fresh venv, `pip install` only this dist, then import every module it ships."""
    venv = Path(tempfile.mkdtemp(prefix="verify-", dir=work_dir))
    env = _environment()
    try:
        made = installer.venv(venv, env, timeout)
        if made.returncode != 0:
            return Outcome(target.name, False, f"cannot create a venv: {_last_line(made)}")
        venv_python = str(venv / "bin" / "python")
        installed = _run(
            [*installer.pip_install(venv_python), "--no-input", "--quiet", *source.pip_args, "--", target.requirement],
            env, timeout, cwd=venv,
        )
        if installed.returncode != 0:
            return Outcome(target.name, False, f"pip install {target.requirement}: {_last_line(installed)}")
        checked = _run([venv_python, "-I", "-c", _CHECK_SCRIPT, target.name], env, timeout, cwd=venv)
        try:
            result = json.loads(checked.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return Outcome(target.name, False, f"the import check crashed: {_last_line(checked)}")
        where = f"{result['version']}" + (f" (commit {result['sha'][:12]})" if result.get("sha") else "")
        if result["error"]:
            return Outcome(target.name, False, f"{where}: {result['error']}")
        if result.get("environment"):
            return Outcome(target.name, True, f"{where}: an environment, installed with its whole set")
        shipped = _count(len(result["modules"]), "module") + " imported"
        if result["resources"]:
            shipped += ", " + _count(result["resources"], "other file") + " installed"
        return Outcome(target.name, True, f"{where}: {shipped}")
    except subprocess.TimeoutExpired as e:
        return Outcome(target.name, False, f"timed out after {timeout:.0f} s running {' '.join(map(str, e.cmd))[:200]}")
    finally:
        shutil.rmtree(venv, ignore_errors=True)


def verify(
    source: Source,
    *,
    python: str = sys.executable,
    jobs: int = 2,
    timeout: float = 600.0,
    report: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Check every target of `source`, `jobs` at a time; `report` sees each outcome as it finishes."""
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="relay-verify-") as work:
        installer = Installer.prepare(python, Path(work), _environment(), timeout)

        def one(target: Target) -> Outcome:
            outcome = check_dist(target, source, installer, Path(work), timeout)
            with lock:
                report(outcome)
            return outcome

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            return list(pool.map(one, source.targets))


def format_outcome(outcome: Outcome) -> str:
    return f"{'ok    ' if outcome.ok else 'FAILED'}  {outcome.name}  {outcome.detail}"


def _run(argv: list[str], env: dict[str, str], timeout: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    # cwd is the empty venv directory, never a checkout whose sources could shadow the installed dist.
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _valid_name(name: str) -> bool:
    try:
        canonicalize_name(name, validate=True)
    except InvalidName:
        return False
    return True


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or [f"exit status {result.returncode}"])[-1][:500]


def _credentials(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return None
    return f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))

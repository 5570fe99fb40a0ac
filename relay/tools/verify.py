"""`relay verify`: install each dist of an export alone into a fresh venv and import what it ships."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidName, canonicalize_name

from relay.index.constraints import url_requirements
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
    """Where dists come from: installer arguments plus the list of dists to check."""

    description: str
    pip_args: tuple[str, ...]
    targets: tuple[Target, ...]
    # The direct URL requirements (`pkg @ git+https://...`) of its dists: uv installs a URL
    # dependency of a dependency only when it is also a constraint (relay/index/constraints.py).
    url_constraints: tuple[str, ...] = ()


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
        url_constraints=url_requirements(export),
    )


def index_source(index_url: str, extra_pip_args: Sequence[str] = (), timeout: float = 600.0) -> Source:
    """A relay index such as http://HOST/main/simple/: its root page lists the dists (PEP 691 JSON)."""
    root = index_url.rstrip("/") + "/"
    try:
        # A pull-mode relay builds a commit's export on its first request: that can take minutes.
        page = json.loads(_get(root, PEP691_JSON, timeout))
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
        url_constraints=_relay_url_constraints(root, timeout),
    )


def _relay_url_constraints(root: str, timeout: float) -> tuple[str, ...]:
    """The URL requirements in a relay ref's `constraints.txt` (beside its `simple/`), if it has one."""
    if not root.endswith("/simple/"):
        return ()
    try:
        text = _get(root[: -len("simple/")] + "constraints.txt", "text/plain", timeout).decode()
    except (OSError, UnicodeDecodeError):
        return ()  # not a relay (or an older one): pip needs no constraints, uv will say what it misses
    found = []
    for line in text.splitlines():
        try:
            requirement = Requirement(line.strip())
        except InvalidRequirement:
            continue  # comments, blank lines
        if requirement.url:
            found.append(str(requirement))
    return tuple(found)


def _get(url: str, accept: str, timeout: float) -> bytes:
    request = urllib.request.Request(_without_credentials(url), headers={"Accept": accept})
    credentials = _credentials(url)
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return bytes(response.read())


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
    return replace(source, targets=chosen)


# pip 25.2 is the first pip whose resolver finishes quickly on a large, dense dependency cycle
# between dists (docs/benchmarks.md, "Dependency cycles"); the pip a Python bundles may be older.
CURRENT_PIP = "pip>=25.2"
INSTALLERS = ("auto", "uv", "pip")


@dataclass(frozen=True)
class Installer:
    """What installs each dist into its fresh venv, said in verify's output.

    `uv pip install --python VENV` (uv resolves a 30-dist cycle in seconds), or a current pip in a
    tool venv of its own driving pip-less venvs (`pip --python`, pip 22.3+); with an older pip
    only (no uv, and the tool venv's pip could not be upgraded), a pip inside every venv.
    """

    kind: str  # "uv" or "pip"
    python: str  # the interpreter the fresh venvs are made with
    command: tuple[str, ...]  # argv of the installer up to `install`'s options
    version: str  # "uv 0.8.3", "pip 25.3"
    shared: bool = True  # one installer for every venv (False: each venv's own pip)
    note: str = ""  # why it is not the installer verify wanted, when it is not

    @property
    def description(self) -> str:
        where = "" if self.kind == "uv" else " in its own tool venv" if self.shared else " inside each venv"
        return f"{self.version}{where}" + (f" ({self.note})" if self.note else "")

    @classmethod
    def prepare(
        cls, python: str, work_dir: Path, env: dict[str, str], timeout: float, choice: str = "auto"
    ) -> "Installer":
        """uv when asked, or (`auto`) when there is one; else pip, upgraded to CURRENT_PIP."""
        if choice not in INSTALLERS:
            raise VerifyError(f"--installer {choice}: not one of {', '.join(INSTALLERS)}")
        uv = find_uv() if choice in ("auto", "uv") else None
        if uv is not None:
            version = _run([uv, "--version"], env, timeout, cwd=work_dir)
            if version.returncode == 0:
                return cls("uv", python, (uv, "pip", "install"), " ".join(version.stdout.split()[:2]))
            if choice == "uv":
                raise VerifyError(f"--installer uv: {uv} --version failed: {_last_line(version)}")
        elif choice == "uv":
            raise VerifyError(
                "--installer uv: no uv found (neither the `uv` package beside the relay nor `uv` on "
                "the PATH). Install it (`pip install uv`), or use --installer pip."
            )
        return cls.pip_in_tool_venv(python, work_dir, env, timeout)

    @classmethod
    def pip_in_tool_venv(
        cls, python: str, work_dir: Path, env: dict[str, str], timeout: float, upgrade: bool = True
    ) -> "Installer":
        tool = work_dir / "pip-venv"
        made = _run([python, "-m", "venv", str(tool)], env, timeout, cwd=work_dir)
        if made.returncode != 0:
            raise VerifyError(f"cannot create a virtualenv with --python {python}: {_last_line(made)}")
        pip = str(tool / "bin" / "python")
        note = ""
        if upgrade:
            # With the user's pip configuration: it names the index (and CA bundle) that reaches PyPI.
            upgraded = _run(
                [pip, "-m", "pip", "install", "--quiet", "--no-input", "--upgrade", CURRENT_PIP], env, timeout, cwd=work_dir
            )
            if upgraded.returncode != 0:
                note = (
                    f"the bundled one: installing {CURRENT_PIP} failed: {_last_line(upgraded)}; an older pip can "
                    "stall on a large dependency cycle, where uv (--installer uv) does not"
                )
        found = _run([pip, "-m", "pip", "--version"], env, timeout, cwd=work_dir).stdout.split()
        version = found[1] if len(found) > 1 else "unknown"
        try:
            shared = tuple(int(p) for p in version.split(".")[:2]) >= (22, 3)
        except ValueError:
            shared = False
        return cls("pip", python, (pip, "-m", "pip"), f"pip {version}", shared, note)

    def venv(self, dest: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        # Without pip the venv holds exactly the dist and its requirements, and is made in a blink.
        flags = ["--without-pip"] if self.shared else []
        return _run([self.python, "-m", "venv", *flags, str(dest)], env, timeout, cwd=dest.parent)

    def install(self, venv_python: str, source: Source, constraints: Path | None, requirement: str) -> list[str]:
        """The argv installing `requirement` (after `--`: never read as an option) into the venv."""
        if self.kind == "uv":
            limits = ["--constraint", str(constraints)] if constraints is not None else []
            return [*self.command, "--python", venv_python, "--quiet", *limits, *source.pip_args, "--", requirement]
        if self.shared:
            argv = [*self.command, "--python", venv_python, "install"]
        else:
            argv = [venv_python, "-m", "pip", "install"]
        return [*argv, "--no-input", "--quiet", *source.pip_args, "--", requirement]


def find_uv() -> str | None:
    """The uv binary: the `uv` package's beside the relay (its wheel ships it), else on the PATH."""
    try:
        # Optional, never a requirement of the relay (the uv wheel is platform-specific).
        from uv import find_uv_bin  # type: ignore[import-not-found]  # pants: no-infer-dep

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return str(beside)
    return shutil.which("uv")


def check_dist(
    target: Target,
    source: Source,
    installer: Installer,
    work_dir: Path,
    timeout: float,
    constraints: Path | None = None,
) -> Outcome:
    """Make a fresh venv, install only this dist, then import every module it ships."""
    venv = Path(tempfile.mkdtemp(prefix="verify-", dir=work_dir))
    env = _environment()
    try:
        made = installer.venv(venv, env, timeout)
        if made.returncode != 0:
            return Outcome(target.name, False, f"cannot create a venv: {_last_line(made)}")
        venv_python = str(venv / "bin" / "python")
        installed = _run(installer.install(venv_python, source, constraints, target.requirement), env, timeout, cwd=venv)
        if installed.returncode != 0:
            return Outcome(
                target.name, False, f"{installer.kind} install {target.requirement}: {_last_line(installed)}"
            )
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
        # _run ended the command's whole process group: nothing it started runs on.
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
    installer: Installer | str = "auto",
    announce: Callable[[Installer], None] = lambda installer: None,
) -> list[Outcome]:
    """Check every target of `source`, `jobs` at a time; `report` sees each outcome as it finishes.

    `installer` is an Installer, or the choice `auto` (uv if there is one, else a current pip), `uv`
    or `pip`; `announce` is told which one was prepared before the first dist is checked. Every
    process verify starts has ended when it returns, or raises (Ctrl-C included).
    """
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="relay-verify-") as work:
        try:
            chosen = (
                installer
                if isinstance(installer, Installer)
                else Installer.prepare(python, Path(work), _environment(), timeout, installer)
            )
            announce(chosen)
            constraints = None
            if chosen.kind == "uv" and source.url_constraints:
                constraints = Path(work) / "url-constraints.txt"
                constraints.write_text("\n".join(source.url_constraints) + "\n")

            def one(target: Target) -> Outcome:
                outcome = check_dist(target, source, chosen, Path(work), timeout, constraints)
                with lock:
                    report(outcome)
                return outcome

            pool = ThreadPoolExecutor(max_workers=max(1, jobs))
            try:
                return list(pool.map(one, source.targets))
            finally:
                # On Ctrl-C the queued dists are dropped and the running ones' processes ended (below),
                # so the workers return at once.
                pool.shutdown(wait=False, cancel_futures=True)
                _PROCESSES.end_all()
                pool.shutdown(wait=True)
        finally:
            _PROCESSES.end_all()


def format_outcome(outcome: Outcome) -> str:
    return f"{'ok    ' if outcome.ok else 'FAILED'}  {outcome.name}  {outcome.detail}"


class _ProcessGroups:
    """The process groups of the commands running now, so that verify can end them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()

    def add(self, group: int) -> None:
        with self._lock:
            self._groups.add(group)

    def discard(self, group: int) -> None:
        with self._lock:
            self._groups.discard(group)

    def end_all(self) -> None:
        with self._lock:
            groups = list(self._groups)
        for group in groups:
            _end_group(group)


_PROCESSES = _ProcessGroups()


def _end_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


def _run(argv: list[str], env: dict[str, str], timeout: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one command in a process group of its own; on a timeout (or any interruption) end the
    whole group: `pip --python` re-runs pip under the venv's interpreter, and uv and pip start
    build backends, which killing the launcher alone would leave running as orphans."""
    # cwd is the empty venv directory, never a checkout whose sources could shadow the installed dist.
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    _PROCESSES.add(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        # The leader is not reaped yet, so its pid still names this group and no other.
        _end_group(process.pid)
        process.communicate()
        raise
    finally:
        _PROCESSES.discard(process.pid)
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # uv trusts what pip is told to trust (a company CA bundle), unless told otherwise.
    if "SSL_CERT_FILE" not in env and env.get("PIP_CERT") and Path(env["PIP_CERT"]).is_file():
        env["SSL_CERT_FILE"] = env["PIP_CERT"]
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
    # uv explains a failure over several lines from `error: ...` (`× ...` on a terminal) on.
    start = next((i for i, line in enumerate(lines) if line.startswith(("error:", "×"))), None)
    if start is not None:
        return " ".join(line.lstrip("×╰─▶│ ").strip() for line in lines[start:])[:500]
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

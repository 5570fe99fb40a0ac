"""Building members with their own PEP 517 backends (`uv build --wheel`), from a snapshot of the
work tree, into a cache keyed by what the build depends on: a member whose inputs did not change
is never built again."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from export_dists_core.compat import Version

from export_dists_uv.versions import MemberVersion

LOG_TAIL_LINES = 40


class BuildFailed(Exception):
    """A member's backend failed: the message names it and ends with the tail of its build log."""


@dataclass(frozen=True)
class BuiltWheel:
    filename: str
    content: bytes
    cached: bool  # taken from the cache, not built now


def uv_binary() -> str:
    """The uv of this environment (the `uv` wheel this exporter requires), else the one on the PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise BuildFailed("export-dists-uv builds members with uv, and no `uv` was found: `pip install uv`.") from None
        return found


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "export-dists-uv"


def build_key(planned: MemberVersion) -> str:
    """What a member's built wheel depends on: its own content, and its version when the backend
    reads it from the environment (a dynamic version may be written into its files)."""
    if planned.member.dynamic_version:
        return f"{planned.own_fingerprint}-{planned.version}"
    return planned.own_fingerprint


def version_environment(planned: MemberVersion) -> dict[str, str]:
    """The variables through which dynamic-version backends take a version instead of asking git."""
    version = planned.version
    upper = re.sub(r"[-_.]+", "_", planned.member.name).upper()
    return {
        # setuptools-scm, and hatch-vcs through it
        "SETUPTOOLS_SCM_PRETEND_VERSION": version,
        f"SETUPTOOLS_SCM_PRETEND_VERSION_FOR_{upper}": version,
        # uv-dynamic-versioning (its templates index major.minor.patch, so three release parts: an
        # equal version), poetry-dynamic-versioning, pdm-backend's scm source, versioningit
        "UV_DYNAMIC_VERSIONING_BYPASS": three_part(version),
        "POETRY_DYNAMIC_VERSIONING_BYPASS": version,
        "PDM_BUILD_SCM_VERSION": version,
        "VERSIONINGIT_VERSION": version,
    }


def three_part(version: str) -> str:
    """`0.7+g0123` -> `0.7.0+g0123`: the same version (PEP 440 pads releases with zeros)."""
    parsed = Version(version)
    if len(parsed.release) >= 3:
        return version
    text = f"{parsed.epoch}!" if parsed.epoch else ""
    text += ".".join(str(part) for part in (*parsed.release, 0, 0)[:3])
    if parsed.pre is not None:
        text += f"{parsed.pre[0]}{parsed.pre[1]}"
    if parsed.post is not None:
        text += f".post{parsed.post}"
    if parsed.dev is not None:
        text += f".dev{parsed.dev}"
    if parsed.local is not None:
        text += f"+{parsed.local}"
    return text


class WheelCache:
    """Built wheels under `<cache dir>/built/<key>/<wheel>`, written atomically (a rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, key: str) -> BuiltWheel | None:
        directory = self.root / "built" / key
        try:
            names = [n for n in os.listdir(directory) if n.endswith(".whl")]
        except OSError:
            return None
        if len(names) != 1:
            return None
        try:
            return BuiltWheel(names[0], (directory / names[0]).read_bytes(), cached=True)
        except OSError:
            return None

    def put(self, key: str, wheel: Path) -> BuiltWheel:
        content = wheel.read_bytes()
        parent = self.root / "built"
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:16]}-", dir=parent))
        shutil.copyfile(wheel, staging / wheel.name)
        try:
            os.rename(staging, parent / key)
        except OSError:  # another export put it there first: the same build
            shutil.rmtree(staging, ignore_errors=True)
        return BuiltWheel(wheel.name, content, cached=False)


def snapshot(root: Path, files: Sequence[str], into: Path) -> None:
    """Copy the work tree's files (what git would commit) into `into`: backends write build
    directories and egg-info beside their sources, which must not land in the user's checkout."""
    for relpath in files:
        source = root / relpath
        target = into / relpath
        if not source.is_file() or source.is_symlink() and not source.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no build log)"
    return "\n".join(lines[-LOG_TAIL_LINES:])


def build_members(
    root: Path,
    files: Sequence[str],
    wanted: Sequence[MemberVersion],
    cache: WheelCache,
    *,
    jobs: int,
    uv: str | None = None,
) -> dict[str, BuiltWheel]:
    """Each member's wheel as its backend builds it: from the cache, or built now (in parallel)."""
    result: dict[str, BuiltWheel] = {}
    missing = []
    for planned in wanted:
        hit = cache.get(build_key(planned))
        if hit is not None:
            result[planned.member.project] = hit
        else:
            missing.append(planned)
    if not missing:
        return result
    uv = uv or uv_binary()
    with tempfile.TemporaryDirectory(prefix="export-dists-uv-") as scratch_text:
        scratch = Path(scratch_text)
        tree = scratch / "workspace"
        snapshot(root, files, tree)
        lock = threading.Lock()

        def build(planned: MemberVersion) -> None:
            member = planned.member
            out = scratch / "out" / member.project
            log = scratch / "logs" / f"{member.project}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, **version_environment(planned)}
            env.pop("VIRTUAL_ENV", None)
            with log.open("wb") as log_file:
                code = subprocess.run(
                    [uv, "build", "--wheel", "--out-dir", str(out), "--no-progress", str(tree / member.path)],
                    cwd=tree,
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                ).returncode
            wheels = sorted(out.glob("*.whl")) if out.is_dir() else []
            if code != 0 or len(wheels) != 1:
                cause = f"exit status {code}" if code != 0 else f"{len(wheels)} wheels instead of one"
                raise BuildFailed(
                    f"building the workspace member {member.name} ({member.path}, backend {member.backend}) "
                    f"failed ({cause}); nothing was written. Fix its build (`uv build --wheel {member.path}` in "
                    f"the workspace shows the same) and re-run. The end of its build log:\n{_tail(log)}"
                )
            built = cache.put(build_key(planned), wheels[0])
            with lock:
                result[member.project] = built

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(build, planned) for planned in missing]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            for future in futures:
                error = future.exception() if future.done() and not future.cancelled() else None
                if error is not None:
                    raise error
    return result

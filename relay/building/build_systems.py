"""Which exporter builds a repository's commits: `pants export-dists` (pants.toml) or export-dists-uv
(a root pyproject.toml with [tool.uv.workspace]); both write the same export directory."""
from __future__ import annotations

import importlib.util
import shlex
import shutil
import sys
from typing import Optional

from relay.building.builders import COLD_EXPORT_COMMAND, WARM_EXPORT_COMMAND, ExportCommand
from relay.git import Git, GitError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the Pythons before 3.11
    import tomli as tomllib

PANTS = "pants"
UV = "uv"
AUTO = "auto"
CHOICES = (AUTO, PANTS, UV)
# The uv exporter writes <output_dir>/<sha>/ like the Pants goal; its wheel cache
# (~/.cache/export-dists-uv) makes a new commit cost the members that changed.
UV_EXPORT_COMMAND = "{exporter} --output-dir {output_dir} {worktree}"


class BuildSystemError(Exception):
    pass


async def _file(git: Git, ref: str, path: str) -> Optional[str]:
    try:
        return await git.run("show", f"{ref}:{path}")
    except GitError:
        return None


async def detect(git: Git, ref: str) -> str:
    """PANTS or UV for the repository's `ref`, or BuildSystemError saying what was looked for."""
    if await _file(git, ref, "pants.toml") is not None:
        return PANTS
    pyproject = await _file(git, ref, "pyproject.toml")
    if pyproject is not None:
        try:
            document = tomllib.loads(pyproject)
        except tomllib.TOMLDecodeError:
            document = {}
        if "workspace" in document.get("tool", {}).get("uv", {}):
            return UV
    raise BuildSystemError(
        f"--repo {git.repo}: at {ref} there is neither a pants.toml (a Pants repository) nor a "
        "pyproject.toml with [tool.uv.workspace] (a uv workspace), so the relay cannot tell how to build "
        "its commits. Pass --build-system pants or uv, or --export-command."
    )


def uv_exporter() -> str:
    """How to run export-dists-uv: with the relay's own Python when it can import it, else from the PATH."""
    if importlib.util.find_spec("export_dists_uv") is not None:
        return f"{shlex.quote(sys.executable)} -m export_dists_uv"
    found = shutil.which("export-dists-uv")
    if found is None:
        raise BuildSystemError(
            "the repository is a uv workspace, and export-dists-uv (which builds it) is not installed "
            "beside the relay: `pip install export-dists-uv` into the relay's environment."
        )
    return shlex.quote(found)


def export_command(build_system: str, *, warm: bool) -> ExportCommand:
    if build_system == UV:
        return ExportCommand(UV_EXPORT_COMMAND.replace("{exporter}", uv_exporter()))
    return ExportCommand(WARM_EXPORT_COMMAND if warm else COLD_EXPORT_COMMAND)

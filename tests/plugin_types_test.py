"""mypy over the plugin (tests aside) against the Pants this checkout runs (2.17.1), in CI.

The same check per supported release, against each release's own sources, is the maintainer
command build-support/pants_api/mypy_per_tag.py (it needs a pantsbuild/pants clone).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "build-support" / "pants_api"))

from mypy_per_tag import gate_flags, plugin_modules  # noqa: E402


def _pants_python() -> Path:
    """The interpreter of the Pants venv ./pants bootstraps (scripts/test passes it along)."""
    given = os.environ.get("EXPORT_DISTS_PANTS_VENV")
    venv = given or subprocess.run(
        [str(ROOT / "pants"), "--bootstrap-venv"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip().splitlines()[-1]
    return Path(venv) / "bin" / "python"


def test_mypy_finds_no_errors_in_the_plugin_against_the_installed_pants(tmp_path: Path) -> None:
    python = _pants_python()
    version = subprocess.run(
        [str(python), "-c", "from pants.version import VERSION; print(VERSION)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    # mypy of this test environment (python-default's lockfile pins it); PATH entries may be relative.
    beside = Path(sys.executable).parent / "mypy"
    mypy = str(beside if beside.is_file() else Path(shutil.which("mypy") or "mypy").absolute())
    result = subprocess.run(
        [
            mypy,
            "--python-executable", str(python),
            "--cache-dir", str(tmp_path / "cache"),
            *gate_flags(version),
            *plugin_modules(),
        ],
        cwd=ROOT / "pants-plugins",
        # The core the plugin imports (core/export_dists_core), type-checked with it.
        env={**os.environ, "MYPYPATH": str(ROOT / "core")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"mypy against Pants {version}:\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout

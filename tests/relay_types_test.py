"""mypy over the relay and its test support (relay/, relay_testing/), in CI: zero errors.

The configuration (build-support/mypy/relay.ini) names the files and the two untyped libraries
(botocore, aiobotocore) whose imports are Any; the relay's code itself has no ignores to hide behind.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_errors_in_the_relay(tmp_path: Path) -> None:
    # mypy of this test environment (python-default's lockfile pins it); PATH entries may be relative.
    beside = Path(sys.executable).parent / "mypy"
    mypy = str(beside if beside.is_file() else Path(shutil.which("mypy") or "mypy").absolute())
    result = subprocess.run(
        [
            mypy,
            "--python-executable", sys.executable,
            "--config-file", str(ROOT / "build-support" / "mypy" / "relay.ini"),
            # A fresh cache: a cached module keeps errors that per-module settings since removed.
            "--cache-dir", str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        # The relay imports the core (build systems) and its tests the uv exporter, as scripts/test runs them.
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "core"), str(ROOT / "uv-exporter")])},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"mypy over the relay:\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout

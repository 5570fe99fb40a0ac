"""mypy --strict over the uv exporter and the core it imports, in CI (the environment's own mypy)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_strict_finds_no_errors_in_the_uv_exporter_and_the_core(tmp_path: Path) -> None:
    beside = Path(sys.executable).parent / "mypy"
    mypy = str(beside if beside.is_file() else Path(shutil.which("mypy") or "mypy").absolute())
    result = subprocess.run(
        [
            mypy, "--strict", "--python-version", "3.9", "--cache-dir", str(tmp_path / "cache"),
            # The modules, not their tests (which are typed, not strict).
            *(
                str(path.relative_to(ROOT))
                for package in (ROOT / "uv-exporter" / "export_dists_uv", ROOT / "core" / "export_dists_core")
                for path in sorted(package.glob("*.py"))
                if not path.stem.endswith("_test") and path.stem != "conftest"
            ),
        ],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": os.pathsep.join([str(ROOT / "uv-exporter"), str(ROOT / "core")])},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr

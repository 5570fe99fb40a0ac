"""The plugin's modules that need no Pants import without it (a build-system-neutral core can move them).

Run in a fresh interpreter of this test environment, which has no `pants` installed.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parent.parent / "pants-plugins"

# History walk, origins and their inputs, the SCC graphs, the wheel writer and its cache, the export
# layout, naming, packaging compat.
PANTS_FREE = ("compat", "graphs", "history", "inputs", "layout", "naming", "origins", "wheel", "wheel_cache")


@pytest.mark.parametrize("module", PANTS_FREE)
def test_imports_without_pants(module: str) -> None:
    code = (
        f"import sys; import export_dists.{module}; "
        "leaked = sorted(m for m in sys.modules if m == 'pants' or m.startswith('pants.')); "
        "assert not leaked, leaked"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PLUGINS, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

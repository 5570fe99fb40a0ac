"""The plugin's modules that need no Pants import without it (a build-system-neutral core can move them).

Run in a fresh interpreter of this test environment, which has no `pants` installed.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "pants-plugins"
CORE = ROOT / "core"

# The build-system-neutral core (history walk, origins and their inputs, the SCC graphs, the wheel
# writer, the export layout, naming, packaging compat): every module of it. And the plugin's own
# Pants-free ones.
CORE_MODULES = tuple(
    sorted(f"export_dists_core.{p.stem}" for p in (CORE / "export_dists_core").glob("*.py") if not p.stem.endswith("_test") and p.stem != "conftest")
)
PANTS_FREE = ("export_dists.wheel_cache", *CORE_MODULES)


def test_the_core_holds_the_shared_modules() -> None:
    expected = {"compat", "graphs", "history", "inputs", "layout", "naming", "origins", "wheel"}
    assert expected <= {m.rpartition(".")[2] for m in CORE_MODULES}, CORE_MODULES


@pytest.mark.parametrize("module", PANTS_FREE)
def test_imports_without_pants(module: str) -> None:
    code = (
        f"import sys; import {module}; "
        # The core stands alone: no Pants, and nothing of the plugin either.
        f"banned = ('pants', 'export_dists') if {module.startswith('export_dists_core.')} else ('pants',); "
        "leaked = sorted(m for m in sys.modules if m in banned or m.startswith(tuple(b + '.' for b in banned))); "
        "assert not leaked, leaked"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(CORE)
    result = subprocess.run([sys.executable, "-c", code], cwd=PLUGINS, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr

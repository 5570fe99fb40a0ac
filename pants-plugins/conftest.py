"""pytest configuration for the plugin tests (rootdir pants-plugins, or the repository root)."""
from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Pants 2.17 pins packaging 21.3, which calls pyparsing's deprecated camelCase API on every
    # requirement it parses; the plugin already silences this outside pytest (export_dists.compat).
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:packaging")

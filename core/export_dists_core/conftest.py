"""pytest setup for the core's tests."""
from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Inside Pants 2.17 the core runs on packaging 21.3, which calls pyparsing's deprecated
    # camelCase API on every requirement it parses; compat.py silences it outside pytest.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:packaging")

"""Fixtures shared by the tests under src/python: the sample texts of data/samples."""
from __future__ import annotations

from pathlib import Path

import pytest

# A `files` target: tests see it at its path from the build root (the sandbox's working directory).
SAMPLES = Path("data/samples")


@pytest.fixture
def sample_path() -> Path:
    """The path of a sample text."""
    return SAMPLES / "alice.txt"


@pytest.fixture
def sample_text(sample_path: Path) -> str:
    """The contents of a sample text."""
    return sample_path.read_text(encoding="utf-8")

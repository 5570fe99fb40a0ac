"""Settings of the word count service, read from TOML (tomllib on 3.11+, tomli before)."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # The `tomli; python_version < "3.11"` requirement: the same API before 3.11.
    import tomli as tomllib


@dataclass(frozen=True)
class Settings:
    """How documents are analyzed."""

    top: int = 5
    min_words: int = 1


def parse_settings(text: str) -> Settings:
    """Return the settings in the ``[wordcount]`` table of the TOML document ``text``."""
    table = tomllib.loads(text).get("wordcount", {})
    return Settings(top=int(table.get("top", 5)), min_words=int(table.get("min_words", 1)))


def load_settings(path: Path) -> Settings:
    """Return the settings in the TOML file at ``path``."""
    return parse_settings(path.read_text(encoding="utf-8"))

"""Load the stop word list shipped as package data (the `stopwords` resources target)."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def stopwords() -> frozenset[str]:
    """Return the stop words in ``textkit/core/stopwords.txt``, read through importlib.resources."""
    text = resources.files(__package__).joinpath("stopwords.txt").read_text(encoding="utf-8")
    return frozenset(
        word for word in (line.split("#", 1)[0].strip() for line in text.splitlines()) if word
    )

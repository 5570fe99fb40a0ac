"""Split text into normalized word tokens: the base every other textkit module builds on."""
from __future__ import annotations

import re
import unicodedata

# Letters, digits and inner apostrophes/hyphens: "don't" and "well-known" stay one word.
_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")


def normalize(word: str) -> str:
    """Return ``word`` case-folded, NFKC-normalized and with curly apostrophes made straight."""
    return unicodedata.normalize("NFKC", word).casefold().replace("\u2019", "'")


def tokenize(text: str) -> list[str]:
    """Return the normalized words of ``text`` in order of appearance."""
    return [normalize(match.group(0)) for match in _WORD.finditer(text)]


def sentences(text: str) -> list[str]:
    """Return the non-empty sentences of ``text``, split after ``.``, ``!`` or ``?``."""
    return [part.strip() for part in re.split(r"(?<=[.!?])\s+", text) if part.strip()]

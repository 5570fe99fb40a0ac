"""Count words and pick the most frequent ones."""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from textkit.base.tokens import sentences, tokenize


def word_frequencies(text: str, *, ignore: Iterable[str] = ()) -> Counter[str]:
    """Return how often each word of ``text`` occurs, leaving out the words in ``ignore``."""
    skipped = frozenset(ignore)
    return Counter(word for word in tokenize(text) if word not in skipped)


def top_words(frequencies: Counter[str], n: int) -> list[tuple[str, int]]:
    """Return the ``n`` most frequent words, ties broken alphabetically so output is stable."""
    return sorted(frequencies.items(), key=lambda item: (-item[1], item[0]))[:n]


def sentence_count(text: str) -> int:
    """Return how many sentences ``text`` has."""
    return len(sentences(text))

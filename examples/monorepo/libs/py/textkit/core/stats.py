"""Summary statistics of a text: word counts, vocabulary, sentence length, top words."""
from __future__ import annotations

from collections import Counter

import attrs

from textkit.core.stopwords import stopwords
from textkit.util.counting import sentence_count, top_words, word_frequencies


@attrs.frozen
class TextStats:
    """What textkit knows about one text."""

    words: int
    unique_words: int
    sentences: int
    top_words: tuple[tuple[str, int], ...]

    @property
    def mean_sentence_length(self) -> float:
        """Words per sentence; 0.0 for a text without sentences."""
        return self.words / self.sentences if self.sentences else 0.0


def analyze(text: str, *, top: int = 5) -> TextStats:
    """Return the statistics of ``text``; stop words are left out of ``top_words`` only."""
    frequencies = word_frequencies(text)
    ignored = stopwords()
    content = Counter({word: count for word, count in frequencies.items() if word not in ignored})
    return TextStats(
        words=sum(frequencies.values()),
        unique_words=len(frequencies),
        sentences=sentence_count(text),
        top_words=tuple(top_words(content, top)),
    )

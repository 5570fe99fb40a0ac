"""Tests for textkit.core.stats, including the stop words read from package data."""
from __future__ import annotations

from textkit.core.stats import analyze
from textkit.core.stopwords import stopwords


def test_stopwords_come_from_the_resource() -> None:
    assert {"the", "and", "it's"} <= stopwords()
    assert "#" not in "".join(stopwords())


def test_analyze() -> None:
    stats = analyze("The cat sat. The cat ran! A dog barked at the cat.")
    assert stats.words == 12
    assert stats.sentences == 3
    assert stats.top_words[0] == ("cat", 3)
    assert stats.mean_sentence_length == 4.0

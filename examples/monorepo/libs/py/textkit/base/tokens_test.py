"""Tests for textkit.base.tokens."""
from __future__ import annotations

from textkit.base.tokens import normalize, sentences, tokenize


def test_tokenize_keeps_inner_apostrophes_and_hyphens() -> None:
    assert tokenize("Don't panic: it's a well-known fact!") == [
        "don't",
        "panic",
        "it's",
        "a",
        "well-known",
        "fact",
    ]


def test_normalize_folds_case_and_apostrophes() -> None:
    assert normalize("Stra\u00dfe") == "strasse"
    assert normalize("It\u2019s") == "it's"


def test_sentences() -> None:
    assert sentences("One. Two!  Three?") == ["One.", "Two!", "Three?"]

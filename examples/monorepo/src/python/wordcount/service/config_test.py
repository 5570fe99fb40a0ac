"""Tests for wordcount.service.config and pipeline."""
from __future__ import annotations

import pytest

from wordcount.service.config import Settings, parse_settings
from wordcount.service.pipeline import Document, DocumentTooShort, analyze_document


def test_parse_settings() -> None:
    assert parse_settings("[wordcount]\ntop = 3\n") == Settings(top=3, min_words=1)
    assert parse_settings("") == Settings()


def test_too_short() -> None:
    with pytest.raises(DocumentTooShort, match="min_words = 5"):
        analyze_document(Document("short", "two words"), Settings(min_words=5))

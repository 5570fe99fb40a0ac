"""Analyze documents: the service layer between the wordcount app and textkit.core."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from textkit.core.stats import TextStats, analyze

from wordcount.service.config import Settings

if TYPE_CHECKING:
    # Only for the annotation below. The BUILD file excludes this inferred dependency, so the
    # service dist does not require the :extras dist (and requests with it).
    from wordcount.service.extra_http import HttpDocument


@dataclass(frozen=True)
class Document:
    """A named text."""

    name: str
    text: str


class DocumentTooShort(ValueError):
    """A document has fewer words than ``Settings.min_words``."""


def analyze_document(document: Union[Document, HttpDocument], settings: Settings) -> TextStats:
    """Return the statistics of ``document``; raise DocumentTooShort below ``settings.min_words``."""
    stats = analyze(document.text, top=settings.top)
    if stats.words < settings.min_words:
        raise DocumentTooShort(
            f"{document.name} has {stats.words} words, fewer than min_words = {settings.min_words}"
        )
    return stats

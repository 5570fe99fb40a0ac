"""Render wordcount reports as plain text or JSON."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from wordcount.report.builder import Report


def _as_text(report: Report) -> str:
    stats = report.stats
    lines = [
        report.title,
        f"  words: {stats.words} ({stats.unique_words} unique)",
        f"  sentences: {stats.sentences} ({stats.mean_sentence_length:.1f} words each)",
    ]
    lines += [f"  {word}: {count}" for word, count in stats.top_words]
    return "\n".join(lines)


def _as_json(report: Report) -> str:
    stats = report.stats
    return json.dumps(
        {
            "title": report.title,
            "words": stats.words,
            "unique_words": stats.unique_words,
            "sentences": stats.sentences,
            "top_words": [list(pair) for pair in stats.top_words],
        },
        sort_keys=True,
    )


FORMATS: dict[str, Callable[[Report], str]] = {"text": _as_text, "json": _as_json}


def render(report: Report, fmt: str) -> str:
    """Render ``report`` in the format ``fmt`` (a key of FORMATS)."""
    return FORMATS[fmt](report)


def render_text(title: str, text: str) -> str:
    """Analyze ``text`` and render it as a plain-text report, in one call."""
    # Imported here, not at module level: wordcount.report imports this module at module level.
    from wordcount.report.builder import build_report

    return render(build_report(title, text), "text")

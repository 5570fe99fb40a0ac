"""Build a report from a text and render it in one of the formats of wordcount.formats."""
from __future__ import annotations

from dataclasses import dataclass

from textkit.core.stats import TextStats, analyze

# Module-level import of wordcount.formats; formats imports this module back inside a function,
# so the two targets depend on each other (a dependency cycle) and still import in any order.
from wordcount.formats.render import FORMATS, render


@dataclass(frozen=True)
class Report:
    """The statistics of one named text."""

    title: str
    stats: TextStats


def build_report(title: str, text: str, *, top: int = 5) -> Report:
    """Analyze ``text`` into a report called ``title``."""
    return Report(title=title, stats=analyze(text, top=top))


def report_as(report: Report, fmt: str = "text") -> str:
    """Render ``report`` as ``fmt``, one of wordcount.formats.render.FORMATS."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}: use one of {', '.join(sorted(FORMATS))}")
    return render(report, fmt)

"""The wordcount command: summarize texts from files or stdin.

`summarize()` is the entry point of the example's deep chain:
wordcount.app -> wordcount.service -> textkit.core -> textkit.util -> textkit.base.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from wordcount.report.builder import Report, report_as
from wordcount.service.config import Settings, load_settings
from wordcount.service.pipeline import Document, analyze_document


def summarize(text: str, *, title: str = "text", fmt: str = "text", top: int = 5) -> str:
    """Return a report on ``text`` rendered as ``fmt`` ("text" or "json")."""
    stats = analyze_document(Document(title, text), Settings(top=top))
    return report_as(Report(title=title, stats=stats), fmt)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="wordcount", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="text files (default: stdin)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--config", type=Path, help="a TOML file with a [wordcount] table")
    args = parser.parse_args(argv)
    settings = load_settings(args.config) if args.config else Settings()
    documents = [Document(str(path), path.read_text(encoding="utf-8")) for path in args.paths]
    if not documents:
        documents = [Document("<stdin>", sys.stdin.read())]
    for document in documents:
        stats = analyze_document(document, settings)
        print(report_as(Report(title=document.name, stats=stats), args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())

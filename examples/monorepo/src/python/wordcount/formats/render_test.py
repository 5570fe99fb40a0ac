"""Tests for wordcount.formats, importing it first to show the report <-> formats cycle is safe."""
from __future__ import annotations

import json

from wordcount.formats.render import render, render_text


def test_render_text_goes_through_the_report_target() -> None:
    assert render_text("t", "Hello world. Hello again.").splitlines()[:2] == [
        "t",
        "  words: 4 (3 unique)",
    ]


def test_render_json() -> None:
    from wordcount.report.builder import build_report

    data = json.loads(render(build_report("t", "a b b"), "json"))
    assert data["top_words"] == [["b", 2]]

"""Tests for the wordcount command, on the sample texts (a `files` target) via conftest.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from wordcount.app.main import main, summarize


def test_summarize_sample(sample_text: str) -> None:
    data = json.loads(summarize(sample_text, title="sample", fmt="json", top=3))
    assert data["title"] == "sample"
    assert data["words"] > 50
    assert len(data["top_words"]) == 3


def test_main_reads_files(sample_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(sample_path)]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line == str(sample_path)

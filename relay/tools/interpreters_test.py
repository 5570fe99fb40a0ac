"""`relay verify`'s interpreter: one every dist's Requires-Python admits, or a message naming --python."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from relay.cli import main
from relay.tools.interpreters import NoSuitablePython, choose_python, version_of
from relay_testing.exports import DistSpec, fake_sha, write_export

VERSIONS = {"/usr/bin/python3.11": Version("3.11.7"), "/opt/py38/bin/python3": Version("3.8.18"), "/broken": None}


def _choose(*requires: str | None) -> str:
    return choose_python(requires, found=list(VERSIONS), probe=VERSIONS.get)


def test_the_first_interpreter_every_requires_python_admits() -> None:
    assert _choose(None, ">=3.7") == "/usr/bin/python3.11"
    # A Python 3.8-3.9 repository: every dist of it FAILED with the relay's own 3.11 before.
    assert _choose("<3.10,>=3.8", ">=3.7") == "/opt/py38/bin/python3"


def test_no_interpreter_admits_them_says_what_to_pass() -> None:
    with pytest.raises(NoSuitablePython, match=r"require Python <3.7, .* pass one with --python"):
        _choose("<3.7")


def test_verify_picks_the_interpreter_from_the_manifest(store_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    running = version_of(sys.executable)
    assert running is not None
    other = f"!={running.major}.{running.minor}.*"
    try:
        choose_python([other])
    except NoSuitablePython:
        pytest.skip("no second Python on this machine")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    export = write_export(store_dir, fake_sha(7), 1, (DistSpec("monorepo.picky", requires_python=other),))
    status = main(["verify", str(store_dir / export.key), "--extra-index-url", "file:///nonexistent"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert f"with {sys.executable}," not in out
    assert "ok      monorepo.picky" in out


def test_verify_with_no_admissible_interpreter_exits_2(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = write_export(store_dir, fake_sha(8), 1, (DistSpec("monorepo.ancient", requires_python="<3.0"),))
    assert main(["verify", str(store_dir / export.key)]) == 2
    assert "pass one with --python" in capsys.readouterr().err

"""One name for the relay's command: `export-dists-relay` wherever a user reads it (docs, --help, messages)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from relay import cli
from tests.example_repo import REPO_ROOT

# What the command was also called: only `export-dists-relay` is installed.
OLD_NAMES = re.compile(r"(?<![-\w/.`])(relay (serve|passwd|token|check|publish|verify)\b|relay\.pex)|python -m relay\b(?!\.)")
# The one place that says how to run it from a checkout of this repository.
FROM_A_CHECKOUT = "In a checkout of this repository, `python -m relay` runs the same command"
DOCS = ("README.md", "docs/relay.md", "docs/deployment.md", "docs/design.md", "pants-plugins/README.md")


@pytest.mark.parametrize("doc", DOCS)
def test_the_docs_name_the_installed_command(doc: str) -> None:
    text = (REPO_ROOT / doc).read_text().replace(FROM_A_CHECKOUT, "")
    found = [m.group(0) for m in OLD_NAMES.finditer(text)]
    assert not found, f"{doc} still says {sorted(set(found))}: write `export-dists-relay ...`"


def _helps() -> dict[str, str]:
    parser = cli.build_parser()
    helps = {"": parser.format_help()}
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name, sub in subparsers.choices.items():  # type: ignore[union-attr]
        helps[name] = sub.format_help()
    return helps


def test_help_and_its_examples_name_the_installed_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # Wide: argparse wraps at hyphens, which would split the name across lines.
    monkeypatch.setenv("COLUMNS", "1000")
    for command, text in _helps().items():
        assert text.startswith(f"usage: export-dists-relay {command}".rstrip()), text[:80]
        found = [m.group(0) for m in OLD_NAMES.finditer(text)]
        assert not found, f"--help of {command or 'the command'} says {found}"


def test_messages_name_the_installed_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from relay.auth.credentials import AuthFileError, parse_entry

    with pytest.raises(SystemExit, match="^export-dists-relay: --repo"):
        cli.main(["serve", "--store", str(tmp_path / "store"), "--repo", str(tmp_path)])
    assert cli.main(["check", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("export-dists-relay check: ")
    with pytest.raises(AuthFileError, match="create entries with `export-dists-relay passwd` or `export-dists-relay token`"):
        parse_entry("alice", "relay.auth:1")

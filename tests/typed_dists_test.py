"""An installed dist in a type checker: mypy (and pyright, where Node.js is here) on the example's textkit.

What an IDE user gets after `pip install monorepo.libs.py.textkit.core`: without a PEP 561 marker
mypy does not read the installed package at all; with `[export-dists].typed` it checks calls
against the dist's annotations. pyright reads library code either way (useLibraryCodeForTypes), and
its `--verifytypes` needs the marker.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.example_repo import ExampleRepo, make_example_repo
from tests.venvs import Venv, clean_environment, make_venv

CORE = "monorepo.libs.py.textkit.core"
# A use of the dist with one type error that only a checker reading its annotations can see.
SNIPPET = """\
from textkit.core.stats import analyze

stats = analyze("One text. Two sentences.")
words: str = stats.words
reveal_type(stats.mean_sentence_length)
"""
PYRIGHT_VERSION = "1.1.408"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> ExampleRepo:
    return make_example_repo(tmp_path_factory.mktemp("typed") / "monorepo", commits=1)


def _export(repo: ExampleRepo, name: str, *options: str) -> Path:
    result = repo.pants("export-dists", f"--export-dists-output-dir=dist/{name}", *options, "::")
    return Path(result.stdout.strip().splitlines()[-1])


def _installed(tmp: Path, export_dir: Path) -> Venv:
    env = make_venv(tmp / "venv", "3.11")
    env.pip("install", "--no-cache-dir", "--find-links", str(export_dir), CORE)
    return env


def _mypy(env: Venv, source: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-executable", str(env.python), "--no-incremental",
         "--cache-dir", "/dev/null", "--no-error-summary", str(source)],
        capture_output=True, text=True, env=clean_environment(), timeout=600,
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def envs(repo: ExampleRepo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Venv]:
    plain = _export(repo, "plain")
    typed = _export(repo, "typed", "--export-dists-typed")
    return {
        "plain": _installed(tmp_path_factory.mktemp("plain"), plain),
        "typed": _installed(tmp_path_factory.mktemp("typed"), typed),
    }


def test_mypy_reads_a_typed_dist_and_skips_an_unmarked_one(envs: dict[str, Venv], tmp_path: Path) -> None:
    source = tmp_path / "use.py"
    source.write_text(SNIPPET)
    plain = _mypy(envs["plain"], source)
    assert "module is installed, but missing library stubs or py.typed marker" in plain, plain
    typed = _mypy(envs["typed"], source)
    assert "py.typed marker" not in typed, typed
    assert 'Incompatible types in assignment (expression has type "int", variable has type "str")' in typed, typed
    assert 'Revealed type is "builtins.float"' in typed, typed


def _pyright(tmp: Path) -> list[str] | None:
    """pyright from the npm registry, where Node.js and npm are installed (None: they are not)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return None
    prefix = tmp / "pyright"
    subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(prefix),
                    f"pyright@{PYRIGHT_VERSION}"], check=True, capture_output=True, timeout=600)
    return [str(prefix / "node_modules" / ".bin" / "pyright")]


def test_pyright_types_an_installed_dist_and_verifies_a_typed_one(envs: dict[str, Venv], tmp_path: Path) -> None:
    pyright = _pyright(tmp_path)
    if pyright is None:
        pytest.skip("pyright needs Node.js and npm (apt-get install nodejs npm); mypy is checked above")
    source = tmp_path / "use.py"
    source.write_text(SNIPPET)
    for name, env in envs.items():
        result = subprocess.run([*pyright, "--pythonpath", str(env.python), "--outputjson", str(source)],
                                capture_output=True, text=True, timeout=600)
        report = json.loads(result.stdout)
        messages = [d["message"] for d in report["generalDiagnostics"]]
        # Completion and types with or without the marker: pyright reads the installed code.
        assert any('"int" is not assignable to declared type "str"' in m for m in messages), (name, messages)
        assert any('Type of "stats.mean_sentence_length" is "float"' in m for m in messages), (name, messages)
        # --verifytypes finds packages of the active virtualenv (it ignores --pythonpath).
        active = {**clean_environment(), "VIRTUAL_ENV": str(env.path),
                  "PATH": f"{env.path / 'bin'}:{clean_environment().get('PATH', '')}"}
        verify = subprocess.run([*pyright, "--verifytypes", "textkit.core"],
                                capture_output=True, text=True, timeout=600, cwd=tmp_path, env=active)
        if name == "plain":
            assert "No py.typed file found" in verify.stdout, verify.stdout
        else:
            assert "No py.typed file found" not in verify.stdout, verify.stdout
            assert "textkit/core/py.typed" in verify.stdout, verify.stdout

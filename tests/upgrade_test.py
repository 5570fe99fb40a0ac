"""The README's upgrade lines, run as written: they move the monorepo's dists to a newer commit and leave
third-party versions alone (pip and setuptools among them) unless the new dists require otherwise.

A venv holds an older pip and setuptools, and a monorepo dist that requires both unpinned (as st2's
did); after a commit that changes that dist, the README's pip line and its uv line upgrade every
monorepo dist installed and nothing else. `--upgrade-strategy eager`, the advice they replace, is run
last to show the hazard is real: it upgrades setuptools (and pip) from the public index.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from relay_testing.exports import DistSpec, write_export
from tests.notebook import Notebook, client_environment, python_for, run
from tests.relay_process import RelayProcess
from tests.venvs import uv_binary

README = Path(__file__).resolve().parent.parent / "README.md"
OLD_PIP, OLD_SETUPTOOLS = "23.2.1", "65.5.0"
SHA1, SHA2 = "1" * 40, "2" * 40


def dists(message: str) -> list[DistSpec]:
    return [
        # Requires pip and setuptools unpinned, as st2common did: eager upgrades them.
        DistSpec("monorepo.app", requires=("monorepo.lib",), third_party=("pip", "setuptools"),
                 files=(("app/main.py", f"MESSAGE = {message!r}\n"),)),
        DistSpec("monorepo.lib"),
        DistSpec("monorepo.other"),  # installed on its own: named by the line, not a dependency of app
    ]


def readme_upgrade_lines() -> list[str]:
    """The commands of the README's upgrade block (the ```sh block after "Move to a newer commit")."""
    text = README.read_text()
    start = text.index("- Move to a newer commit")
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert block is not None, "README: no ```sh block after 'Move to a newer commit'"
    body = re.sub(r"\\\n\s*", "", "\n".join(line.strip() for line in block.group(1).splitlines()))
    commands = [line for line in body.splitlines() if line.strip()]
    assert len(commands) == 2 and commands[0].startswith("pip install") and commands[1].startswith("uv pip install")
    return commands


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RelayProcess, Path]]:
    work = tmp_path_factory.mktemp("upgrade")
    store = work / "store"
    store.mkdir()
    write_export(store, SHA1, 1, dists("first"), origins={})
    relay = RelayProcess(store, "--upstream", "https://pypi.org/simple", log=work / "relay.log")
    try:
        yield relay, store
    finally:
        relay.stop()


def _notebook(path: Path) -> Notebook:
    python = python_for("3.11") or python_for("3.9")
    if python is None:
        pytest.skip("needs python3.11 or python3.9")
    notebook = Notebook.create(path, python)
    notebook.pip("install", "--index-url", "https://pypi.org/simple", f"pip=={OLD_PIP}", f"setuptools=={OLD_SETUPTOOLS}")
    return notebook


def _shell(notebook: Notebook, command: str) -> subprocess.CompletedProcess[str]:
    """A README line in a shell whose pip and uv work on the notebook's venv (as in an activated one)."""
    env = {
        "PATH": f"{notebook.path / 'bin'}:{Path(uv_binary() or 'uv').parent}:{os.environ['PATH']}",
        "VIRTUAL_ENV": str(notebook.path),
    }
    return run(["sh", "-c", command], env=env)


def _versions(notebook: Notebook) -> dict[str, str]:
    # Underscores: Python 3.9's importlib.metadata does not find the dotted spelling.
    names = ("monorepo_app", "monorepo_lib", "monorepo_other", "pip", "setuptools")
    return {n: notebook.version_of(n) for n in names}


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_the_readme_upgrade_moves_monorepo_dists_only(
    relay: tuple[RelayProcess, Path], tmp_path: Path, installer: str
) -> None:
    if installer == "uv" and uv_binary() is None:
        pytest.skip("uv is not installed")
    server, store = relay
    if not (store / SHA2).exists():
        write_export(store, SHA2, 2, dists("second"), origins={"monorepo.lib": (SHA1, 1), "monorepo.other": (SHA1, 1)})
    notebook = _notebook(tmp_path / "venv")
    # What the notebook installed at commit 1 (the sha index: the branch has moved meanwhile).
    notebook.pip("install", "--index-url", f"{server.url}/{SHA1}/simple/", "monorepo.app", "monorepo.other")
    before = _versions(notebook)
    assert before["monorepo_app"] == f"0.1+g{SHA1[:12]}" and (before["pip"], before["setuptools"]) == (OLD_PIP, OLD_SETUPTOOLS)

    pip_line, uv_line = readme_upgrade_lines()
    line = (pip_line if installer == "pip" else uv_line).replace("https://relay.example.com", server.url)
    _shell(notebook, line.replace("<sha>", SHA2))

    after = _versions(notebook)
    assert after == {**before, "monorepo_app": f"0.2+g{SHA2[:12]}"}, (before, after)
    assert notebook.python_code("import app.main; print(app.main.MESSAGE)").strip() == "second"
    notebook.check()

    if installer == "pip":
        # The advice this replaces: eager upgrades every requirement to the newest on any index.
        notebook.pip("install", "--upgrade", "--upgrade-strategy", "eager", "--index-url", f"{server.url}/main/simple/",
                     "monorepo.app")
        assert notebook.version_of("setuptools") != OLD_SETUPTOOLS


def test_upgrade_lines_are_what_the_pages_show() -> None:
    """The README's lines and the pages' lines are the same command (relay.web.install_lines makes the latter)."""
    from relay.web.install_lines import Where, install_lines

    pip_line, uv_line = readme_upgrade_lines()
    lines = install_lines(Where("https://relay.example.com/", auth=False, credentials=False, upstream=True), "main", "<sha>", ("N",),
                          url_requirements=False)
    assert pip_line.startswith(lines.upgrade.command.replace("%pip", "pip") + " ")
    assert uv_line.startswith(lines.uv_upgrade.command + " ")
    assert client_environment()["PIP_CONFIG_FILE"] == os.devnull

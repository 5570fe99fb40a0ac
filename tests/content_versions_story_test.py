"""Versions by content, end to end (issue 10): a notebook installs against a moving main.

Three commits of the example, each exported by `pants export-dists` (push mode):
A the copy; B edits wordcount/formats, a leaf that neither X (textkit.core) nor Y
(wordcount.service) depends on; C edits textkit.util, which X and Y depend on. For pip and uv, a
notebook installs X from /main/simple/ while main is at A, Y after B was pushed, and upgrades X
eagerly after C; the relay's access log says which wheels were downloaded.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.example_repo import ExampleRepo, make_example_repo
from tests.notebook import Notebook, python_for
from tests.relay_process import RelayProcess

X = "monorepo.libs.py.textkit.core"
Y = "monorepo.src.python.wordcount.service"
X_CLOSURE = {X, "monorepo.libs.py.textkit.util", "monorepo.libs.py.textkit.base", "monorepo.libs.py.textkit.core.stopwords"}
UNRELATED_LEAF = "src/python/wordcount/formats/render.py"
SHARED_LEAF = "libs/py/textkit/util/counting.py"
_WHEEL_REQUEST = re.compile(r'method=GET path="/[0-9a-f]{40}/([^"/]+\.whl)" status=200')


@dataclass(frozen=True)
class Exports:
    repo: ExampleRepo
    out: Path  # <out>/<sha>/ for A, B and C
    a: str
    b: str
    c: str

    def manifest(self, sha: str) -> dict:
        return json.loads((self.out / sha / "manifest.json").read_text())

    def versions(self, sha: str) -> dict[str, str]:
        return {d["name"]: d["version"] for d in self.manifest(sha)["dists"]}


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Exports:
    work = tmp_path_factory.mktemp("content")
    repo = make_example_repo(work / "monorepo", commits=1)
    out = work / "exports"

    def export() -> str:
        repo.pants("export-dists", f"--export-dists-output-dir={out}", "::")
        return repo.head

    a = export()
    render = (repo.path / UNRELATED_LEAF).read_text()
    b = repo.commit("formats: a comment", {UNRELATED_LEAF: render + "\n# Commit B of the content story.\n"})
    export()
    counting = (repo.path / SHARED_LEAF).read_text()
    c = repo.commit("textkit.util: a comment", {SHARED_LEAF: counting + "\n# Commit C of the content story.\n"})
    export()
    return Exports(repo, out, a, b, c)


def test_versions_move_only_where_code_changed(exports: Exports) -> None:
    a, b, c = (exports.versions(sha) for sha in (exports.a, exports.b, exports.c))
    changed_b = {name for name in b if b[name] != a[name]}
    changed_c = {name for name in c if c[name] != b[name]}
    assert changed_b == {
        "monorepo.src.python.wordcount.formats",
        "monorepo.src.python.wordcount.report",  # formats and report import each other
        "monorepo.src.python.wordcount.app",
    }
    assert "monorepo.libs.py.textkit.util" in changed_c and X in changed_c and Y in changed_c
    assert "monorepo.libs.py.textkit.base" not in changed_c
    assert "monorepo.libs.py.textkit.core.stopwords" not in changed_c
    assert all(c[name] == f"0.3+g{exports.c[:12]}" for name in changed_c)
    # Unchanged wheels are one file on disk, however many exports list them.
    base = next(d for d in exports.manifest(exports.c)["dists"] if d["name"] == "monorepo.libs.py.textkit.base")
    assert os.path.samefile(exports.out / exports.a / base["filename"], exports.out / exports.c / base["filename"])


def _tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_an_export_after_commits_is_byte_identical_to_a_fresh_export_of_its_commit(
    exports: Exports, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh"
    exports.repo.pants("export-dists", f"--export-dists-output-dir={fresh}", "::")
    assert _tree(exports.out / exports.c) == _tree(fresh / exports.c)
    # Written only where it changed: an unchanged dist's page is the earlier export's file.
    base = next(d for d in exports.manifest(exports.c)["dists"] if d["name"] == "monorepo.libs.py.textkit.base")
    page = f"simple/{base['project']}/index.html"
    assert os.path.samefile(exports.out / exports.a / page, exports.out / exports.c / page)


def _push(exports: Exports, store: Path, sha: str, relay: RelayProcess) -> None:
    """Copy one export into the relay's store (hard links, as a CI push onto one file system would)."""
    shutil.copytree(exports.out / sha, store / f".push-{sha}", copy_function=os.link)
    os.rename(store / f".push-{sha}", store / sha)
    deadline = time.monotonic() + 60
    while relay.get("/main/simple/").headers.get("X-Relay-Commit") != sha:
        assert time.monotonic() < deadline, f"the relay did not pick up {sha}"
        time.sleep(0.2)


def _wheels_downloaded(relay: RelayProcess, since: int) -> list[str]:
    text = relay.log.read_text()[since:]
    return sorted(m.group(1) for m in _WHEEL_REQUEST.finditer(text))


def _project(filename: str) -> str:
    return filename.split("-", 1)[0].replace("_", ".")


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[RelayProcess, Path]]:
    store = tmp_path / "store"
    store.mkdir()
    process = RelayProcess(store, "--upstream", "https://pypi.org/simple", log=tmp_path / "relay.log")
    try:
        yield process, store
    finally:
        process.stop()


@pytest.mark.parametrize("client", ["pip", "uv"])
def test_iterating_against_a_moving_main(
    exports: Exports, relay: tuple[RelayProcess, Path], tmp_path: Path, client: str
) -> None:
    server, store = relay
    notebook = Notebook.create(tmp_path / "venv", python_for("3.11") or sys.executable)
    index = f"{server.url}/main/simple/"

    def install(*args: str) -> str:
        if client == "pip":
            return notebook.pip("install", "--no-cache-dir", "--index-url", index, *args).stdout
        # No cache: every wheel a client installs is a request the relay logs.
        return notebook.uv_pip("install", "--no-cache", "--index-url", index, *args).stderr

    # Main at A: install X.
    _push(exports, store, exports.a, server)
    install(X)
    first = notebook.monorepo_dists()
    assert set(first) == X_CLOSURE

    # One unrelated commit (B) later, install Y from the same moving index.
    _push(exports, store, exports.b, server)
    mark = len(server.log.read_text())
    install(Y)
    second = notebook.monorepo_dists()
    notebook.check()  # pip check is clean
    assert {name: second[name] for name in first} == first, "none of X's dists moved"
    assert [_project(f) for f in _wheels_downloaded(server, mark)] == [Y], "only Y itself was downloaded"

    # C changes textkit.util, which X and Y depend on: an eager upgrade of what the notebook
    # installed fetches exactly the changed dist and its dependents.
    _push(exports, store, exports.c, server)
    mark = len(server.log.read_text())
    if client == "pip":
        install("--upgrade", "--upgrade-strategy", "eager", X, Y)
    else:
        install("--upgrade", X, Y)
    downloaded = [_project(f) for f in _wheels_downloaded(server, mark)]
    assert sorted(downloaded) == sorted([X, "monorepo.libs.py.textkit.util", Y])
    third = notebook.monorepo_dists()
    c = exports.versions(exports.c)
    assert {name: d["version"] for name, d in third.items()} == {name: c[name] for name in third}
    assert third[X]["sha"] == exports.c and third["monorepo.libs.py.textkit.base"]["sha"] == exports.a
    notebook.check()

    # constraints.txt of C pins a consistent set: the app joins at C's versions, nothing else moves.
    mark = len(server.log.read_text())
    install("-c", f"{server.url}/{exports.c}/constraints.txt", "monorepo.src.python.wordcount.app")
    fourth = notebook.monorepo_dists()
    assert {name: d["version"] for name, d in fourth.items()} == {name: c[name] for name in fourth}
    assert {name: fourth[name] for name in third} == third
    assert "monorepo.src.python.wordcount.app" in {_project(f) for f in _wheels_downloaded(server, mark)}
    notebook.check()

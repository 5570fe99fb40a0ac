"""An environment dist end to end: `export_dists_environment` over two example targets that share
first-party dependencies, exported by the real ./pants, served by a relay, installed with pip, uv
and pex, and installed together with its members (`pip check` clean)."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.example_repo import ExampleRepo, make_example_repo
from tests.notebook import Notebook, ca_bundle, python_for, run
from tests.relay_process import RELAY_ROOT, RelayProcess

ENVIRONMENT = "monorepo.envs.wordcount"
# report and service:extras share textkit.core (and, through it, util, base and the stopwords).
MEMBERS = ("monorepo.src.python.wordcount.report", "monorepo.src.python.wordcount.service.extras")
SET = frozenset(
    {
        ENVIRONMENT,
        *MEMBERS,
        "monorepo.src.python.wordcount.formats",
        "monorepo.src.python.wordcount.service",
        "monorepo.libs.py.textkit.core",
        "monorepo.libs.py.textkit.core.stopwords",
        "monorepo.libs.py.textkit.util",
        "monorepo.libs.py.textkit.base",
    }
)
ENVIRONMENT_BUILD = """\
# Both wordcount front ends as one installable set.
export_dists_environment(
    name="wordcount",
    dependencies=["src/python/wordcount/report", "src/python/wordcount/service:extras"],
)
"""
IMPORT_SET = (
    "import json, attrs, requests, wordcount.report.builder, wordcount.service.extra_http, textkit.core.stats\n"
    "print(json.dumps({'report': wordcount.report.builder.__file__, 'http': wordcount.service.extra_http.__file__}))"
)


@dataclass(frozen=True)
class Served:
    repo: ExampleRepo
    relay: RelayProcess
    manifest: dict

    @property
    def index(self) -> str:
        return f"{self.relay.url}/main/simple/"


def _python() -> str:
    return python_for("3.11") or sys.executable


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("environments")
    repo = make_example_repo(work / "monorepo", commits=1)
    repo.commit("An environment of the two wordcount front ends", {"envs/BUILD": ENVIRONMENT_BUILD})
    store = work / "store"
    repo.pants("export-dists", f"--export-dists-output-dir={store}", "::")
    manifest = json.loads((store / repo.head / "manifest.json").read_text())
    relay = RelayProcess(store, "--upstream", "https://pypi.org/simple", log=work / "relay.log")
    try:
        yield Served(repo, relay, manifest)
    finally:
        relay.stop()


def _check_set(notebook: Notebook, served: Served) -> None:
    installed = notebook.monorepo_dists()
    assert set(installed) == SET
    # Each dist at its version in the export (with versions by content, each names its own commit).
    exported = {d["name"]: d["version"] for d in served.manifest["dists"]}
    assert {name: d["version"] for name, d in installed.items()} == {name: exported[name] for name in SET}
    assert {d["sha"] for d in installed.values()} <= set(served.repo.shas)
    assert installed[ENVIRONMENT].get("environment") is True
    files = json.loads(notebook.python_code(IMPORT_SET))
    assert all(path.startswith(str(notebook.path)) for path in files.values())
    notebook.check()


def test_the_relay_lists_the_environment_and_its_constraints_pin_it(served: Served) -> None:
    by_name = {d["name"]: d for d in served.manifest["dists"]}
    entry = by_name[ENVIRONMENT]
    version = entry["version"]
    # Every member at its own version in the export.
    first_party = sorted(r for r in entry["requires_dist"] if r.startswith("monorepo."))
    assert first_party == sorted(f"{name}=={by_name[name]['version']}" for name in SET - {ENVIRONMENT})
    assert any(r.startswith("attrs") for r in entry["requires_dist"])
    assert any(r.startswith("requests[socks]") for r in entry["requires_dist"])
    page = served.relay.get("/main/simple/").body.decode()
    assert f'href="{entry["project"]}/"' in page, page
    assert f"{ENVIRONMENT}=={version}" in served.relay.get("/main/constraints.txt").body.decode().splitlines()


def test_pip_installs_the_environment(served: Served, tmp_path: Path) -> None:
    notebook = Notebook.create(tmp_path / "venv", _python())
    notebook.pip("install", "--index-url", served.index, ENVIRONMENT)
    _check_set(notebook, served)


def test_uv_installs_the_environment(served: Served, tmp_path: Path) -> None:
    notebook = Notebook.create(tmp_path / "venv", _python())
    notebook.uv_pip("install", "--index-url", served.index, ENVIRONMENT)
    _check_set(notebook, served)


def test_pip_installs_the_environment_and_its_members_together(served: Served, tmp_path: Path) -> None:
    notebook = Notebook.create(tmp_path / "venv", _python())
    notebook.pip("install", "--index-url", served.index, *MEMBERS)
    notebook.pip("install", "--index-url", served.index, ENVIRONMENT, "monorepo.libs.py.textkit.core")
    _check_set(notebook, served)


def test_pex_builds_the_environment(served: Served, tmp_path: Path) -> None:
    pex = tmp_path / "wordcount.pex"
    bundle = ca_bundle()
    run([sys.executable, "-m", "pex", "--index-url", served.index, ENVIRONMENT, "-o", str(pex),
         *(["--cert", bundle] if bundle else [])])
    # wordcount.service.extra_http is left out: a regular package split across dists does not
    # import from a PEX (docs/design.md, known limitations), environment or not.
    code = (
        "import importlib.metadata as md, json, attrs, requests, textkit.core.stats, wordcount.report.builder\n"
        "print(json.dumps(sorted(d.metadata['Name'] for d in md.distributions()"
        " if d.read_text('export_dists.json'))))"
    )
    assert set(json.loads(run([sys.executable, str(pex), "-c", code]).stdout)) == SET


def test_relay_verify_installs_the_environment_alone(served: Served) -> None:
    # An environment ships no files of its own: verify checks that it installs, not what it imports.
    result = run(
        [sys.executable, "-m", "relay", "verify", "--index-url", served.index, "--dist", ENVIRONMENT,
         "--python", _python()],
        check=False, cwd=RELAY_ROOT, env={"PYTHONPATH": str(RELAY_ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert line.split()[1] == "monorepo-envs-wordcount" and line.endswith("an environment, installed with its whole set")

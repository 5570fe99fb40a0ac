"""The tests the docs cite as proof (`file_test::test_name`) exist: a renamed or removed test makes
its row in a reliability table point at nothing."""
from __future__ import annotations

import re
import subprocess

import pytest

from tests.example_repo import REPO_ROOT

DOCS = ("README.md", "docs/relay.md", "docs/deployment.md", "docs/design.md", "docs/benchmarks.md")
CITED = re.compile(r"`([A-Za-z_/.]*_test)(?:\.py)?::([A-Za-z_0-9]+)`")


def _test_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "*_test.py"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return listed.stdout.split()


@pytest.mark.parametrize("doc", DOCS)
def test_every_cited_test_exists(doc: str) -> None:
    files = _test_files()
    missing = []
    for module, name in CITED.findall((REPO_ROOT / doc).read_text()):
        candidates = [f for f in files if f == f"{module}.py" or f.endswith(f"/{module.rsplit('/', 1)[-1]}.py")]
        if not any(re.search(rf"def {name}\b", (REPO_ROOT / f).read_text()) for f in candidates):
            missing.append(f"{module}::{name}")
    assert not missing, f"{doc} cites tests that do not exist: {missing}"

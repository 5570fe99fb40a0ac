"""The plugin writes the same bytes as at the recorded commit (tests/fixtures/golden_exports.json).

The fixture holds the sha256 of every file (wheels, their .metadata, manifest.json, the simple
index) that `./pants export-dists ::` wrote, at the commit it names, for the example monorepo and a
generated 100-target monorepo made with fixed commit dates (tests/golden_exports.py). A change to
the plugin's structure or to how it calls the engine must not change one byte. A deliberate change
of the bytes re-records the fixture (`python tests/golden_exports.py record`) in the same commit and
says why.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.golden_exports import FIXTURE, golden_exports


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    return golden_exports(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("name", ["example", "generated"])
def test_export_bytes_match_the_recorded_commit(exports: dict[str, dict[str, object]], name: str) -> None:
    recorded = json.loads(FIXTURE.read_text())["exports"][name]
    found = exports[name]
    # Same repository (fixed dates): same head commit, or the comparison would mean nothing.
    assert found["head"] == recorded["head"]
    files: dict[str, str] = found["files"]  # type: ignore[assignment]
    assert sorted(files) == sorted(recorded["files"]), "a different set of files was written"
    changed = sorted(path for path, digest in files.items() if recorded["files"][path] != digest)
    assert not changed, f"{len(changed)} of {len(files)} files differ from the recording: {changed[:10]}"


def test_the_fixture_covers_wheels_and_the_manifest() -> None:
    recorded = json.loads(Path(FIXTURE).read_text())
    for export in recorded["exports"].values():
        paths = export["files"]
        assert "manifest.json" in paths
        assert sum(path.endswith(".whl") for path in paths) >= 5
    assert recorded["pants_version"] == "2.17.1"

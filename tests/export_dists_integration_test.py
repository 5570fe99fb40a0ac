"""The real `./pants export-dists ::` on the example monorepo, installed with plain pip."""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.version import Version

from tests.example_repo import DEEP_CHAIN, DEEP_DIST, ExampleRepo, make_example_repo
from tests.venvs import make_venv

DEEP = DEEP_DIST
CHAIN = DEEP_CHAIN


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> ExampleRepo:
    return make_example_repo(tmp_path_factory.mktemp("example") / "monorepo", commits=2)


@pytest.fixture(scope="module")
def export_dir(repo: ExampleRepo) -> Path:
    result = repo.pants("export-dists", "::")
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path == repo.path / "dist" / "export-dists" / repo.head
    return path


def manifest(export_dir: Path) -> dict:
    return json.loads((export_dir / "manifest.json").read_text())


def test_manifest_describes_every_wheel(repo: ExampleRepo, export_dir: Path) -> None:
    document = manifest(export_dir)
    assert document["format"] == 2 and document["version_scheme"] == "content"
    assert document["sha"] == repo.head
    assert document["count"] == 2
    assert document["version"] == f"0.2+g{repo.head[:12]}"
    names = {dist["name"] for dist in document["dists"]}
    assert set(CHAIN) <= names
    # Tests are never exported; two targets in one directory are two dists.
    assert not any("test" in name for name in names)
    assert "monorepo.src.python.wordcount.service.extras" in names
    for dist in document["dists"]:
        wheel = export_dir / dist["filename"]
        data = wheel.read_bytes()
        assert hashlib.sha256(data).hexdigest() == dist["sha256"]
        assert len(data) == dist["size"]
        metadata = (export_dir / f"{dist['filename']}.metadata").read_bytes()
        assert hashlib.sha256(metadata).hexdigest() == dist["metadata_sha256"]
        with zipfile.ZipFile(wheel) as archive:
            inside = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            assert archive.read(inside) == metadata


def test_metadata_validates_strictly_and_names_its_commit(repo: ExampleRepo, export_dir: Path) -> None:
    for dist in manifest(export_dir)["dists"]:
        raw = (export_dir / f"{dist['filename']}.metadata").read_bytes()
        parsed = Metadata.from_email(raw, validate=True)
        assert parsed.version == Version(dist["version"])
        # The commit its version names: where its content appeared (this one or the first).
        assert dist["origin"] in repo.shas and dist["origin"] in (parsed.summary or "")
        assert dist["version"] == f"0.{repo.shas.index(dist['origin']) + 1}+g{dist['origin'][:12]}"
        assert [str(r) for r in parsed.requires_dist or []] == [str(Requirement(r)) for r in dist["requires_dist"]]


def test_requires_dist_pins_first_party_and_keeps_third_party(export_dir: Path) -> None:
    by_name = {d["name"]: d for d in manifest(export_dir)["dists"]}
    version = manifest(export_dir)["version"]
    app = by_name["monorepo.src.python.wordcount.app"]
    assert f"monorepo.src.python.wordcount.service=={version}" in app["requires_dist"]
    service = by_name["monorepo.src.python.wordcount.service"]
    # The `!` exclusion in service/BUILD keeps the extras target (and requests) out.
    assert not any("extras" in r or r.startswith("requests") for r in service["requires_dist"])
    assert any(r.startswith("tomli") and "python_version" in r for r in service["requires_dist"])
    extras = by_name["monorepo.src.python.wordcount.service.extras"]
    assert any(r.startswith("requests[socks]") for r in extras["requires_dist"])
    report = by_name["monorepo.src.python.wordcount.report"]
    formats = by_name["monorepo.src.python.wordcount.formats"]
    assert f"monorepo.src.python.wordcount.formats=={version}" in report["requires_dist"]
    assert f"monorepo.src.python.wordcount.report=={version}" in formats["requires_dist"]
    for dist in by_name.values():
        assert not any(r.startswith(dist["name"] + "==") for r in dist["requires_dist"]), "self-edge"


def test_wheels_hold_only_their_own_files(export_dir: Path) -> None:
    by_name = {d["name"]: d for d in manifest(export_dir)["dists"]}
    with zipfile.ZipFile(export_dir / by_name["monorepo.libs.py.textkit.core"]["filename"]) as archive:
        files = sorted(n for n in archive.namelist() if ".dist-info/" not in n)
    assert files and all(f.startswith("textkit/core/") for f in files)
    assert "textkit/core/stopwords.txt" not in files  # a separate resources dist owns it
    with zipfile.ZipFile(export_dir / by_name["monorepo.libs.py.textkit.core.stopwords"]["filename"]) as archive:
        assert "textkit/core/stopwords.txt" in archive.namelist()


def test_same_commit_exports_identical_bytes(repo: ExampleRepo, export_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in export_dir.iterdir() if p.is_file()}
    result = repo.pants("export-dists", "--export-dists-output-dir=dist/again", "::")
    again = Path(result.stdout.strip().splitlines()[-1])
    after = {p.name: p.read_bytes() for p in again.iterdir() if p.is_file()}
    assert before == after


@pytest.mark.parametrize("mode", ["find-links", "file-index"])
def test_deep_target_installs_from_the_export_directory(tmp_path: Path, export_dir: Path, mode: str) -> None:
    env = make_venv(tmp_path / "venv", "3.11")
    if mode == "find-links":
        env.pip("install", "--no-cache-dir", "--find-links", str(export_dir), DEEP)
    else:
        # The monorepo index first; third-party names fall through to the default index.
        env.pip(
            "install", "--no-cache-dir",
            "--index-url", (export_dir / "simple").as_uri(),
            "--extra-index-url", "https://pypi.org/simple",
            DEEP,
        )
    installed = env.installed()
    version = manifest(export_dir)["version"]
    for name in CHAIN:
        assert installed.get(name) == version, (name, installed)
    out = env.run("-c", "import wordcount.app.main as m; print(m.__file__); print(m.summarize('the cat and the hat'))")
    assert "site-packages" in out.stdout.splitlines()[0]
    env.pip("check")

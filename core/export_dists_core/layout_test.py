"""Tests for the export directory: manifest.json, the static simple/ tree, atomic writes."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from export_dists_core import layout
from export_dists_core.layout import (
    MANIFEST,
    ExportedDist,
    ExportInfo,
    export_files,
    manifest_document,
    simple_tree,
    write_export,
)
from export_dists_core.wheel import CoreMetadata, build_wheel

SHA = "0123456789abcdef0123456789abcdef01234567"
VERSION = "0.42+g0123456789ab"


def _dist(name: str, address: str, requires: tuple[str, ...] = (), python: str | None = ">=3.9") -> ExportedDist:
    wheel = build_wheel(
        CoreMetadata(name=name, version=VERSION, summary="s", requires_dist=requires, requires_python=python),
        {f"{name.rsplit('.', 1)[-1]}/__init__.py": b""},
        timestamp=1764072000,
    )
    return ExportedDist(
        name=name, version=VERSION, address=address, wheel=wheel, requires_dist=requires, requires_python=python
    )


INFO = ExportInfo(
    sha=SHA,
    version=VERSION,
    count=42,
    namespace="monorepo",
    dirty=False,
    branches=("main",),
    tags=(),
    commit_time="2025-11-25T12:00:00+00:00",
)
B = _dist("monorepo.src.python.a.b", "src/python/a/b:b", (f"monorepo.src.python.c=={VERSION}", "requests>=2"))
C = _dist("monorepo.src.python.c", "src/python/c:c", python='<3.12,>=3.9')
ROOT = _dist("monorepo", "//:root", python=None)


def test_directory_name() -> None:
    assert INFO.directory_name == SHA
    dirty = ExportInfo(**{**INFO.__dict__, "dirty": True})
    assert dirty.directory_name == f"{SHA}.dirty"


def test_manifest_fields() -> None:
    document = manifest_document(INFO, [C, ROOT, B])
    assert {k: v for k, v in document.items() if k != "dists"} == {
        "format": 1,
        "sha": SHA,
        "version": VERSION,
        "count": 42,
        "namespace": "monorepo",
        "dirty": False,
        "branches": ["main"],
        "tags": [],
        "commit_time": "2025-11-25T12:00:00+00:00",
    }
    # Sorted by project (the PEP 503 name).
    assert [d["project"] for d in document["dists"]] == [
        "monorepo",
        "monorepo-src-python-a-b",
        "monorepo-src-python-c",
    ]
    entry = document["dists"][1]
    assert entry == {
        "name": "monorepo.src.python.a.b",
        "project": "monorepo-src-python-a-b",
        "version": VERSION,
        "filename": "monorepo_src_python_a_b-0.42+g0123456789ab-py3-none-any.whl",
        "sha256": hashlib.sha256(B.wheel.content).hexdigest(),
        "size": len(B.wheel.content),
        "metadata_sha256": hashlib.sha256(B.wheel.metadata).hexdigest(),
        "metadata_size": len(B.wheel.metadata),
        "requires_dist": [f"monorepo.src.python.c=={VERSION}", "requests>=2"],
        "requires_python": ">=3.9",
        "address": "src/python/a/b:b",
    }
    assert document["dists"][0]["requires_python"] is None


def test_simple_root_lists_every_project() -> None:
    pages = simple_tree([C, B])
    assert set(pages) == {
        "simple/index.html",
        "simple/monorepo-src-python-a-b/index.html",
        "simple/monorepo-src-python-c/index.html",
    }
    root = pages["simple/index.html"]
    assert '<a href="monorepo-src-python-a-b/">monorepo.src.python.a.b</a>' in root
    assert '<a href="monorepo-src-python-c/">monorepo.src.python.c</a>' in root
    assert root.index("monorepo-src-python-a-b/") < root.index("monorepo-src-python-c/")


def test_project_page_links_wheel_with_hashes_and_metadata() -> None:
    page = simple_tree([C])["simple/monorepo-src-python-c/index.html"]
    wheel = C.wheel
    assert f'href="../../{wheel.filename}#sha256={wheel.sha256}"' in page
    # `<` must be escaped inside the attribute (PEP 503).
    assert 'data-requires-python="&lt;3.12,&gt;=3.9"' in page
    # PEP 658 and its PEP 714 rename, both, with the hash of the .metadata file.
    assert f'data-dist-info-metadata="sha256={wheel.metadata_sha256}"' in page
    assert f'data-core-metadata="sha256={wheel.metadata_sha256}"' in page
    assert f">{wheel.filename}</a>" in page


def test_project_page_without_requires_python() -> None:
    page = simple_tree([ROOT])["simple/monorepo/index.html"]
    assert "data-requires-python" not in page


def test_export_files() -> None:
    files = export_files(INFO, [B, C])
    assert set(files) == {
        MANIFEST,
        B.wheel.filename,
        f"{B.wheel.filename}.metadata",
        C.wheel.filename,
        f"{C.wheel.filename}.metadata",
        "simple/index.html",
        "simple/monorepo-src-python-a-b/index.html",
        "simple/monorepo-src-python-c/index.html",
    }
    assert files[B.wheel.filename] == B.wheel.content
    assert files[f"{B.wheel.filename}.metadata"] == B.wheel.metadata
    assert json.loads(files[MANIFEST]) == manifest_document(INFO, [B, C])


def test_write_export(tmp_path: Path) -> None:
    files = export_files(INFO, [B, C])
    result = write_export(tmp_path / "out", SHA, files)
    assert result.written
    assert result.path == tmp_path / "out" / SHA
    written = {str(p.relative_to(result.path)) for p in result.path.rglob("*") if p.is_file()}
    assert written == set(files)
    for relpath, data in files.items():
        assert (result.path / relpath).read_bytes() == data
    assert os.listdir(tmp_path / "out") == [SHA]  # no staging directory left behind


def test_rewrite_of_identical_export_is_a_no_op(tmp_path: Path) -> None:
    files = export_files(INFO, [B, C])
    write_export(tmp_path, SHA, files)
    mtime = (tmp_path / SHA / MANIFEST).stat().st_mtime_ns
    again = write_export(tmp_path, SHA, files)
    assert not again.written
    assert (tmp_path / SHA / MANIFEST).stat().st_mtime_ns == mtime
    assert os.listdir(tmp_path) == [SHA]


def test_different_export_replaces_the_old_one(tmp_path: Path) -> None:
    write_export(tmp_path, SHA, export_files(INFO, [B, C]))
    files = export_files(INFO, [C])
    result = write_export(tmp_path, SHA, files)
    assert result.written
    written = {str(p.relative_to(result.path)) for p in result.path.rglob("*") if p.is_file()}
    assert written == set(files)
    assert os.listdir(tmp_path) == [SHA]


def test_failure_mid_write_leaves_no_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = export_files(INFO, [B, C])
    real_open = os.open
    calls = []

    def failing_open(path, flags, mode=0o777, **kwargs):
        if kwargs:  # shutil's own directory walking (dir_fd=...), not a file of the export
            return real_open(path, flags, mode, **kwargs)
        calls.append(path)
        if len(calls) == 3:  # after two files are written
            raise KeyboardInterrupt  # e.g. Ctrl-C
        return real_open(path, flags, mode)

    monkeypatch.setattr(layout.os, "open", failing_open)
    with pytest.raises(KeyboardInterrupt):
        write_export(tmp_path, SHA, files)
    assert not (tmp_path / SHA).exists()
    assert os.listdir(tmp_path) == []  # the .tmp-* staging directory is gone too


def test_failure_during_replace_keeps_the_old_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = export_files(INFO, [B, C])
    write_export(tmp_path, SHA, old)

    def failing_write(fd: int, data: bytes) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(layout.os, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_export(tmp_path, SHA, export_files(INFO, [C]))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == [SHA]
    assert (tmp_path / SHA / MANIFEST).read_bytes() == old[MANIFEST]


def test_manifest_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    real_open = os.open

    def recording_open(path, flags, mode=0o777):
        order.append(Path(path).name)
        return real_open(path, flags, mode)

    monkeypatch.setattr(layout.os, "open", recording_open)
    write_export(tmp_path, SHA, export_files(INFO, [B, C]))
    assert order[-1] == MANIFEST and order.count(MANIFEST) == 1
    assert len(order) == len(export_files(INFO, [B, C]))


def test_a_damaged_existing_export_is_rewritten(tmp_path: Path) -> None:
    files = export_files(INFO, [B, C])
    write_export(tmp_path, SHA, files)
    wheel = next(p for p in files if p.endswith(".whl"))
    (tmp_path / SHA / wheel).write_bytes(b"truncated")
    result = write_export(tmp_path, SHA, files)
    assert result.written
    assert (tmp_path / SHA / wheel).read_bytes() == files[wheel]


def test_earlier_dists_of_the_same_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = write_export(tmp_path, INFO.directory_name, export_files(INFO, [B, C, ROOT]))
    assert {d.project for d in layout.earlier_dists(result.path, INFO)} == {B.project, C.project, ROOT.project}
    # The new export's own projects are not read at all.
    opened: list[str] = []
    real_read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: opened.append(self.name) or real_read_bytes(self))
    kept = layout.earlier_dists(result.path, INFO, besides={B.project, ROOT.project})
    assert [d.wheel for d in kept] == [C.wheel]
    assert sorted(opened) == sorted([C.wheel.filename, f"{C.wheel.filename}.metadata"])
    # Another version (or a dirty export) of the directory's commit keeps nothing.
    assert layout.earlier_dists(result.path, ExportInfo(**{**INFO.__dict__, "version": "0.43+g0123456789ab"})) == ()
    assert layout.earlier_dists(result.path, ExportInfo(**{**INFO.__dict__, "dirty": True})) == ()


CONTENT = ExportInfo(**{**INFO.__dict__, "version_scheme": "content"})
OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98"


def test_content_manifest_records_origin_and_fingerprint_per_dist() -> None:
    dist = ExportedDist(**{**C.__dict__, "origin": OTHER_SHA, "fingerprint": "f" * 64})
    document = manifest_document(CONTENT, [dist])
    assert document["format"] == 2 and document["version_scheme"] == "content"
    (entry,) = document["dists"]
    assert (entry["origin"], entry["fingerprint"], entry["dirty"]) == (OTHER_SHA, "f" * 64, False)


def test_unchanged_wheels_are_hard_linked_from_an_earlier_export(tmp_path: Path) -> None:
    write_export(tmp_path, OTHER_SHA, export_files(CONTENT, [B, C]))
    changed = _dist("monorepo.src.python.a.b", "src/python/a/b:b", ("changed>=1",))
    later = ExportInfo(**{**CONTENT.__dict__, "sha": SHA})
    links = layout.link_sources(tmp_path, SHA, [changed, C])
    assert links == {
        C.wheel.filename: str(tmp_path / OTHER_SHA / C.wheel.filename),
        f"{C.wheel.filename}.metadata": str(tmp_path / OTHER_SHA / f"{C.wheel.filename}.metadata"),
        f"simple/{C.project}/index.html": str(tmp_path / OTHER_SHA / f"simple/{C.project}/index.html"),
    }
    result = write_export(tmp_path, SHA, export_files(later, [changed, C]), links)
    assert (result.linked, result.linked_wheels) == (3, 1)
    old, new = tmp_path / OTHER_SHA / C.wheel.filename, tmp_path / SHA / C.wheel.filename
    assert os.path.samefile(old, new) and new.read_bytes() == C.wheel.content
    assert (tmp_path / SHA / changed.wheel.filename).read_bytes() == changed.wheel.content
    # Removing the earlier export leaves the later one whole.
    shutil.rmtree(tmp_path / OTHER_SHA)
    assert new.read_bytes() == C.wheel.content


def test_a_file_whose_bytes_differ_is_not_linked(tmp_path: Path) -> None:
    write_export(tmp_path, OTHER_SHA, export_files(CONTENT, [C]))
    (tmp_path / OTHER_SHA / C.wheel.filename).write_bytes(b"truncated")
    assert layout.link_sources(tmp_path, SHA, [C]) == {}


def test_a_link_that_fails_is_written(tmp_path: Path) -> None:
    links = {C.wheel.filename: tmp_path / "missing.whl"}
    result = write_export(tmp_path, SHA, export_files(CONTENT, [C]), links)
    assert result.linked == 0
    assert (tmp_path / SHA / C.wheel.filename).read_bytes() == C.wheel.content


def _tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _export_after(out: Path, earlier: list[ExportedDist], later: list[ExportedDist]) -> layout.WriteResult:
    """An export of `later` into `out`, which holds an export of `earlier` (another commit)."""
    write_export(out, OTHER_SHA, export_files(CONTENT, earlier))
    info = ExportInfo(**{**CONTENT.__dict__, "sha": SHA})
    return write_export(out, SHA, export_files(info, later), layout.link_sources(out, SHA, later))


def test_an_export_after_a_commit_is_byte_identical_to_a_cold_export(tmp_path: Path) -> None:
    changed = _dist("monorepo.src.python.a.b", "src/python/a/b:b", ("changed>=1",))
    result = _export_after(tmp_path / "incremental", [B, C, ROOT], [changed, C, ROOT])
    cold = write_export(tmp_path / "cold", SHA, export_files(ExportInfo(**{**CONTENT.__dict__, "sha": SHA}), [changed, C, ROOT]))
    assert _tree(result.path) == _tree(cold.path)
    # What did not change is the earlier export's file (its wheel, .metadata and page), what
    # changed is new, and the pages that list every project are written.
    earlier = tmp_path / "incremental" / OTHER_SHA
    for dist in (C, ROOT):
        for path in (dist.wheel.filename, f"{dist.wheel.filename}.metadata", f"simple/{dist.project}/index.html"):
            assert os.path.samefile(result.path / path, earlier / path), path
    assert (result.linked, result.linked_wheels) == (6, 2)
    for path in (changed.wheel.filename, f"simple/{changed.project}/index.html", "simple/index.html", MANIFEST):
        assert os.stat(result.path / path).st_nlink == 1, path


def test_a_page_that_differs_from_this_exports_page_is_written(tmp_path: Path) -> None:
    write_export(tmp_path, OTHER_SHA, export_files(CONTENT, [C]))
    page = tmp_path / OTHER_SHA / f"simple/{C.project}/index.html"
    page.write_bytes(page.read_bytes() + b"<!-- edited -->")
    links = layout.link_sources(tmp_path, SHA, [C])
    assert f"simple/{C.project}/index.html" not in links and C.wheel.filename in links
    info = ExportInfo(**{**CONTENT.__dict__, "sha": SHA})
    result = write_export(tmp_path, SHA, export_files(info, [C]), links)
    assert _tree(result.path) == export_files(info, [C])


def test_a_crash_while_writing_an_export_after_a_commit_leaves_nothing_that_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_export(tmp_path, OTHER_SHA, export_files(CONTENT, [B, C, ROOT]))
    before = _tree(tmp_path / OTHER_SHA)
    changed = _dist("monorepo.src.python.a.b", "src/python/a/b:b", ("changed>=1",))
    info = ExportInfo(**{**CONTENT.__dict__, "sha": SHA})
    files, links = export_files(info, [changed, C, ROOT]), layout.link_sources(tmp_path, SHA, [changed, C, ROOT])
    real_write = os.write

    def dying_write(fd: int, data: bytes) -> int:
        if data == files[f"simple/{changed.project}/index.html"]:
            raise SystemExit("killed")  # after the links, before the manifest
        return real_write(fd, data)

    monkeypatch.setattr(layout.os, "write", dying_write)
    # As if the process died outright: no clean-up runs.
    monkeypatch.setattr(layout.shutil, "rmtree", lambda *args, **kwargs: None)
    with pytest.raises(SystemExit):
        write_export(tmp_path, SHA, files, links)
    monkeypatch.undo()
    left = sorted(os.listdir(tmp_path))
    assert left[0].startswith(".tmp-") and left[1:] == [OTHER_SHA]
    assert not (tmp_path / left[0] / MANIFEST).exists()  # a reader ignores it twice over
    assert _tree(tmp_path / OTHER_SHA) == before  # the earlier export is whole
    # The next run writes the export in full.
    result = write_export(tmp_path, SHA, files, layout.link_sources(tmp_path, SHA, [changed, C, ROOT]))
    assert _tree(result.path) == files


@pytest.mark.parametrize("scheme", ["commit", "content"])
def test_manifest_bytes_are_json_dumps_indented_and_sorted(scheme: str) -> None:
    odd = ExportedDist(
        **{
            **C.__dict__,
            "name": 'monorepo.odd\n"quoted"\u00e9',
            "requires_dist": (),
            "requires_python": None,
            "origin": OTHER_SHA,
            "fingerprint": "f" * 64,
            "dirty": True,
        }
    )
    info = ExportInfo(**{**INFO.__dict__, "version_scheme": scheme, "branches": ("main", 'a"b\nc'), "tags": ("v1",)})
    for dists in ([B, C, ROOT, odd], [], [C]):
        expected = json.dumps(manifest_document(info, dists), indent=2, sort_keys=True) + "\n"
        assert layout.manifest_bytes(info, dists) == expected.encode()
        assert layout.manifest_bytes(info, dists) == expected.encode()  # rendered entries kept


def test_a_write_removes_what_a_dead_write_left_a_day_ago(tmp_path: Path) -> None:
    old_staging = tmp_path / f".tmp-{SHA}-abc"
    old_retired = tmp_path / f".old-{SHA}-def"
    young = tmp_path / ".tmp-staged-ghi"
    unrelated = tmp_path / ".keep"
    for directory in (old_staging, old_retired, young, unrelated):
        (directory / "simple").mkdir(parents=True)
    day_ago = time.time() - layout.STALE_SECONDS - 60
    for directory in (old_staging, old_retired, unrelated):
        os.utime(directory, (day_ago, day_ago))
    write_export(tmp_path, SHA, export_files(INFO, [C]))
    assert sorted(os.listdir(tmp_path)) == sorted([SHA, young.name, unrelated.name])


def test_the_writing_threads_are_started_once_per_process(tmp_path: Path) -> None:
    # In pantsd a thread's start waits for the GIL the engine holds: exports reuse the writers.
    dists = [_dist(f"monorepo.w{i}", f"w{i}:w{i}") for i in range(12)]  # more files than are written inline

    def writers() -> set[int]:
        return {t.ident or 0 for t in threading.enumerate() if t.name.startswith("export-dists-write")}

    first = write_export(tmp_path, SHA, export_files(INFO, dists))
    started = writers()
    assert 1 <= len(started) <= 4
    second = write_export(tmp_path, "f" * 40, export_files(ExportInfo(**{**INFO.__dict__, "sha": "f" * 40}), dists))
    assert writers() == started
    assert _tree(second.path) == {**_tree(first.path), MANIFEST: (second.path / MANIFEST).read_bytes()}

"""Tests for staging an export directory ahead from the newest earlier export."""
from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest

from export_dists_core import layout, staging
from export_dists_core.layout import MANIFEST, ExportedDist, ExportInfo, export_files, write_export
from export_dists_core.layout_test import _dist, _tree
from export_dists_core.staging import StagedExport

EARLIER = "1" * 40
LATER = "2" * 40
INFO = ExportInfo(
    sha=LATER,
    version="0.1",
    count=2,
    namespace="monorepo",
    dirty=False,
    branches=("main",),
    tags=(),
    commit_time="2025-11-25T12:00:00+00:00",
    version_scheme="content",
)
A = _dist("monorepo.a", "a:a")
B = _dist("monorepo.b", "b:b", ("monorepo.a==0.42+g0123456789ab",))
C = _dist("monorepo.c", "c:c", python="<3.12,>=3.9")
B2 = _dist("monorepo.b", "b:b", ("changed>=1",))  # same project, other bytes
D = _dist("monorepo.d", "d:d")  # a project the earlier export did not have


def _earlier(out: Path, dists: list[ExportedDist]) -> Path:
    return write_export(out, EARLIER, export_files(ExportInfo(**{**INFO.__dict__, "sha": EARLIER}), dists)).path


def _write_staged(out: Path, dists: list[ExportedDist], current: str | None = LATER) -> tuple[layout.WriteResult, layout.Staged | None]:
    stager = StagedExport.start(out, lambda: current)
    try:
        staged = stager.take(dists)
        unstaged = [d for d in dists if not (staged and staged.holds(d))]
        files = export_files(INFO, dists)
        return write_export(out, LATER, files, layout.link_sources(out, LATER, unstaged), staged), staged
    finally:
        stager.close()


def test_a_staged_export_is_byte_identical_to_a_cold_one(tmp_path: Path) -> None:
    earlier = _earlier(tmp_path / "out", [A, B, C])
    later = [A, B2, D]  # one changed, one gone, one new
    result, staged = _write_staged(tmp_path / "out", later)
    cold = write_export(tmp_path / "cold", LATER, export_files(INFO, later))
    assert _tree(result.path) == _tree(cold.path)
    assert staged is not None and staged.holds(A) and not staged.holds(B2) and not staged.holds(D)
    # The unchanged dist's files are the earlier export's; what changed or is new is written.
    for path in (A.wheel.filename, f"{A.wheel.filename}.metadata", f"simple/{A.project}/index.html"):
        assert os.path.samefile(result.path / path, earlier / path), path
    for path in (B2.wheel.filename, f"simple/{B2.project}/index.html", D.wheel.filename, "simple/index.html", MANIFEST):
        assert os.stat(result.path / path).st_nlink == 1, path
    assert not (result.path / "simple" / C.project).exists()
    assert (result.linked, result.linked_wheels) == (3, 1)
    # Nothing is left beside the two exports, and the earlier one is whole.
    assert sorted(os.listdir(tmp_path / "out")) == [EARLIER, LATER]
    assert _tree(earlier) == export_files(ExportInfo(**{**INFO.__dict__, "sha": EARLIER}), [A, B, C])


def test_a_staged_file_whose_bytes_differ_is_written_again(tmp_path: Path) -> None:
    earlier = _earlier(tmp_path / "out", [A, C])
    (earlier / A.wheel.filename).write_bytes(b"truncated")
    page = earlier / f"simple/{C.project}/index.html"
    page.write_bytes(page.read_bytes() + b"<!-- edited -->")
    result, staged = _write_staged(tmp_path / "out", [A, C])
    assert staged is not None and not staged.holds(A) and not staged.holds(C)
    assert _tree(result.path) == export_files(INFO, [A, C])


def test_nothing_is_staged_for_a_re_export(tmp_path: Path) -> None:
    _earlier(tmp_path / "out", [A, C])
    first, _ = _write_staged(tmp_path / "out", [A, C])
    again, staged = _write_staged(tmp_path / "out", [A, C])
    assert staged is None and not again.written
    assert sorted(os.listdir(tmp_path / "out")) == [EARLIER, LATER]


def test_nothing_is_staged_without_an_earlier_export(tmp_path: Path) -> None:
    result, staged = _write_staged(tmp_path / "out", [A])
    assert staged is None and _tree(result.path) == export_files(INFO, [A])


def test_close_before_take_removes_the_staging_directory(tmp_path: Path) -> None:
    _earlier(tmp_path / "out", [A, B, C])
    stager = StagedExport.start(tmp_path / "out", lambda: LATER)
    stager.close()  # the export failed before it wrote
    assert os.listdir(tmp_path / "out") == [EARLIER]


def test_no_links_means_nothing_staged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _earlier(tmp_path / "out", [A, C])

    def cross_device(source: str, target: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(staging.os, "link", cross_device)
    stager = StagedExport.start(tmp_path / "out", lambda: LATER)
    assert stager.take([A, C]) is None
    stager.close()
    assert os.listdir(tmp_path / "out") == [EARLIER]


def test_a_manifest_naming_paths_outside_its_directory_stages_nothing_of_them(tmp_path: Path) -> None:
    earlier = _earlier(tmp_path / "out", [A, C])
    document = json.loads((earlier / MANIFEST).read_text())
    document["dists"][0]["filename"] = "../../escape.whl"
    document["dists"][1]["project"] = ".."
    (earlier / MANIFEST).write_text(json.dumps(document))
    (tmp_path / "escape.whl").write_bytes(b"x")
    result, staged = _write_staged(tmp_path / "out", [A, C])
    assert staged is not None and staged.files == frozenset() and staged.directories == {"simple"}
    assert _tree(result.path) == export_files(INFO, [A, C])


def test_a_crash_while_staging_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    _earlier(tmp_path / "out", [A, B, C])
    stager = StagedExport.start(tmp_path / "out", lambda: LATER)
    stager.take([A])  # as if the process died here: no close, no write
    left = sorted(os.listdir(tmp_path / "out"))
    assert left[0].startswith(".tmp-") and left[1:] == [EARLIER]
    assert not (tmp_path / "out" / left[0] / MANIFEST).exists()
    assert [p.name for _, _, p in layout.newest_exports(tmp_path / "out")] == [EARLIER]
    stager.close()


def test_the_staging_threads_are_started_once_per_process(tmp_path: Path) -> None:
    _earlier(tmp_path / "out", [A, B, C])

    def stagers() -> set[int]:
        return {t.ident or 0 for t in threading.enumerate() if t.name.startswith("export-dists-staging")}

    _write_staged(tmp_path / "out", [A, B2, D])
    started = stagers()
    assert 1 <= len(started) <= 2
    for n in range(3):
        _write_staged(tmp_path / "out", [A, B2, D], current=f"{n:040d}")
    assert stagers() == started

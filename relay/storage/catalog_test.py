"""The disk store's catalog: a restart serves what the manifests say, whatever the catalog file holds."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from relay.contract import MANIFEST, Export, manifest_json
from relay.index import render
from relay.storage import store as store_module
from relay.storage.catalog import CATALOG, Catalog
from relay.storage.store import DiskStore
from relay.storage.store_test import counted_reads
from relay_testing.exports import CHAIN, fake_sha, write_export


def _content_exports(store_dir: Path, n: int) -> list[Export]:
    """`n` content-versioned exports of CHAIN in which only monorepo.tools changes each time."""
    first = (fake_sha(1), 1)
    exports = []
    for i in range(1, n + 1):
        origins = {spec.name: first for spec in CHAIN if spec.name != "monorepo.tools"}
        exports.append(write_export(store_dir, fake_sha(i), i, origins=origins))
    return exports


def _served(store: DiskStore) -> dict[str, object]:
    """Everything a client can get: each export's pages (HTML and JSON) and every listed file."""
    import asyncio

    async def files() -> dict[tuple[str, str], bytes]:
        return {
            (key, name): await store.read(key, name)
            for key, stored in store.exports().items()
            for name in sorted(stored.export.filenames)
        }

    exports = store.exports()
    pages = {}
    for key, stored in sorted(exports.items()):
        export = stored.export
        for page in [render.root_page([export])] + [
            render.project_page(p, [export], lambda key, name: render.file_url("../../", key, name))
            for p in export.projects
        ]:
            assert page is not None
            for media in (render.TEXT_HTML, render.V1_JSON):
                pages[(key, repr(page), media)] = render.render(page, media).body
    return {
        "keys": sorted(exports),
        "sizes": {k: s.size for k, s in exports.items()},
        "pages": pages,
        "files": asyncio.run(files()),
    }


def test_a_restart_serves_the_same_pages_and_files_from_the_catalog_without_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _content_exports(tmp_path, 4)
    before = _served(DiskStore(tmp_path, scan_interval=0))
    assert (tmp_path / CATALOG).is_file()
    reads = counted_reads(monkeypatch)
    after = DiskStore(tmp_path, scan_interval=0)
    assert _served(after) == before
    assert reads == []  # every export came from the catalog
    # Without the catalog (what `check` does) the same again, every manifest parsed.
    assert _served(DiskStore(tmp_path, scan_interval=0, catalog=False)) == before
    assert sorted(reads) == before["keys"]


def test_unchanged_dists_are_one_object_across_exports_and_restarts(tmp_path: Path) -> None:
    _content_exports(tmp_path, 3)
    for store in (DiskStore(tmp_path, scan_interval=0), DiskStore(tmp_path, scan_interval=0)):
        a, b, c = (s.export for _, s in sorted(store.exports().items(), key=lambda kv: kv[1].export.count))
        assert a.dist("monorepo-chain-a") is b.dist("monorepo-chain-a") is c.dist("monorepo-chain-a")
        assert a.dist("monorepo-tools") is not b.dist("monorepo-tools")
        # A new export parsed from its manifest shares the dists read from the catalog.
        new = write_export(
            tmp_path, fake_sha(9), 9, origins={s.name: (fake_sha(1), 1) for s in CHAIN if s.name != "monorepo.tools"}
        )
        store.rescan()
        assert store.exports()[new.key].export.dist("monorepo-chain-a") is a.dist("monorepo-chain-a")
        shutil.rmtree(tmp_path / new.key)


def test_an_export_replaced_or_removed_while_down_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exports = _content_exports(tmp_path, 3)
    DiskStore(tmp_path, scan_interval=0).exports()
    # Replaced: the same commit exported again with one more dist (another manifest, another stamp).
    replaced = exports[1]
    shutil.rmtree(tmp_path / replaced.key)
    bigger = write_export(tmp_path, replaced.sha, replaced.count, CHAIN + (CHAIN[0].__class__("monorepo.extra"),))
    shutil.rmtree(tmp_path / exports[2].key)
    reads = counted_reads(monkeypatch)
    store = DiskStore(tmp_path, scan_interval=0)
    assert sorted(store.exports()) == sorted([exports[0].key, bigger.key])
    assert store.exports()[bigger.key].export.dist("monorepo-extra") is not None
    assert reads == [bigger.key]
    # The catalog now holds exactly those two, as recorded from this scan.
    recorded = Catalog(tmp_path).load(store_module.DistTable())
    assert sorted(recorded) == sorted([exports[0].key, bigger.key])
    assert recorded[bigger.key].export == store.exports()[bigger.key].export


def test_a_manifest_rewritten_in_place_is_read_again(tmp_path: Path) -> None:
    (export,) = _content_exports(tmp_path, 1)
    DiskStore(tmp_path, scan_interval=0).exports()
    manifest = tmp_path / export.key / MANIFEST
    changed = Export(**{**{f: getattr(export, f) for f in (
        "sha", "version", "count", "namespace", "dirty", "tags", "commit_time", "dists", "format")},
        "branches": ("main", "release")})
    manifest.write_text(manifest_json(changed))
    assert DiskStore(tmp_path, scan_interval=0).exports()[export.key].export.branches == ("main", "release")


def test_a_missing_or_damaged_catalog_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _content_exports(tmp_path, 3)
    expected = _served(DiskStore(tmp_path, scan_interval=0))
    (tmp_path / CATALOG).unlink()
    assert _served(DiskStore(tmp_path, scan_interval=0)) == expected
    assert (tmp_path / CATALOG).is_file()  # rebuilt from the manifests
    (tmp_path / CATALOG).write_bytes(b"not a database at all" * 100)
    assert _served(DiskStore(tmp_path, scan_interval=0)) == expected
    reads = counted_reads(monkeypatch)
    assert _served(DiskStore(tmp_path, scan_interval=0)) == expected
    assert reads == []  # the rebuilt catalog serves the next start


def test_a_recorded_export_missing_a_file_is_skipped(tmp_path: Path) -> None:
    good, bad = _content_exports(tmp_path, 2)
    DiskStore(tmp_path, scan_interval=0).exports()
    (tmp_path / bad.key / bad.dists[-1].filename).unlink()
    store = DiskStore(tmp_path, scan_interval=0)
    assert list(store.exports()) == [good.key]
    assert "missing" in store.problems[bad.key]


def test_a_recorded_export_missing_a_file_is_dropped_by_the_background_check(tmp_path: Path) -> None:
    good, bad = _content_exports(tmp_path, 2)
    DiskStore(tmp_path, scan_interval=0).exports()
    (tmp_path / bad.key / bad.dists[-1].filename).unlink()
    store = DiskStore(tmp_path, scan_interval=0, background_parse_bytes=1 << 20)
    try:
        store.exports()  # listed at once; the files are checked on the store's thread
        store.close_parser()  # waits for the checks
        store.rescan()
        assert list(store.exports()) == [good.key]
        assert "missing" in store.problems[bad.key]
    finally:
        store.close_parser()


_CRASH = """
import os, sys
from pathlib import Path
from relay.contract import DistTable
from relay.storage.catalog import Catalog, Recorded
from relay.storage.store import DiskStore
root = Path(sys.argv[1])
store = DiskStore(root, scan_interval=0, catalog=False)
records = {k: Recorded(stamp=(1, 2, 3), export=s.export, size=s.size) for k, s in store.exports().items()}
catalog = Catalog(root)
db = catalog._connect()
db.execute("BEGIN IMMEDIATE")
db.execute("DELETE FROM exports")
for key, record in records.items():
    db.execute("INSERT INTO exports VALUES (?, '[1]', 0, '{}', x'')", (key,))
os._exit(9)  # killed before the commit
"""


def test_a_crash_while_writing_the_catalog_leaves_the_last_complete_one(tmp_path: Path) -> None:
    _content_exports(tmp_path, 3)
    expected = _served(DiskStore(tmp_path, scan_interval=0))
    rows_before = sqlite3.connect(tmp_path / CATALOG).execute("SELECT key, stamp, header FROM exports").fetchall()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    crashed = subprocess.run([sys.executable, "-c", _CRASH, str(tmp_path)], env=env, capture_output=True, text=True)
    assert crashed.returncode == 9, crashed.stderr
    # The rows of the transaction that never committed are not there; the committed ones are.
    db = sqlite3.connect(tmp_path / CATALOG)
    assert db.execute("SELECT key, stamp, header FROM exports").fetchall() == rows_before
    db.close()
    assert _served(DiskStore(tmp_path, scan_interval=0)) == expected


def test_rows_that_do_not_pass_the_contract_are_read_from_their_manifests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exports = _content_exports(tmp_path, 2)
    expected = _served(DiskStore(tmp_path, scan_interval=0))
    db = sqlite3.connect(tmp_path / CATALOG)
    with db:
        db.execute("UPDATE exports SET header = '{\"format\": 2, \"version\": \"not a version\"}' WHERE key = ?",
                   (exports[0].key,))
    db.close()
    reads = counted_reads(monkeypatch)
    assert _served(DiskStore(tmp_path, scan_interval=0)) == expected
    assert reads == [exports[0].key]


def test_a_read_only_store_runs_without_a_catalog(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    _content_exports(tmp_path, 2)
    expected = _served(DiskStore(tmp_path, scan_interval=0, catalog=False))
    tmp_path.chmod(0o555)
    try:
        assert _served(DiskStore(tmp_path, scan_interval=0)) == expected
    finally:
        tmp_path.chmod(0o755)


def test_lookups_without_a_table_per_export(tmp_path: Path) -> None:
    (export,) = _content_exports(tmp_path, 1)
    for dist in export.dists:
        assert export.digest(dist.filename) == (dist.sha256, dist.size)
        assert export.digest(dist.metadata_filename) == (dist.metadata_sha256, dist.metadata_size)
        assert export.dist(dist.project) is dist
    assert export.digest("monorepo_chain_a-9-py3-none-any.whl") is None
    assert export.digest("nothing") is None
    assert export.dist("monorepo-nothing") is None
    # A writer whose file names do not start with the project's wheel name is still served.
    odd = Export(**{**{f: getattr(export, f) for f in (
        "sha", "version", "count", "namespace", "dirty", "branches", "tags", "commit_time", "format")},
        "dists": tuple(d.__class__(**{**{f: getattr(d, f) for f in (
            "name", "project", "version", "sha256", "size", "metadata_sha256", "metadata_size", "requires_dist",
            "requires_python", "address", "origin", "fingerprint", "dirty")}, "filename": f"x{i}-1-py3-none-any.whl"})
            for i, d in enumerate(reversed(export.dists)))})
    assert [d.project for d in odd.dists] == sorted(d.project for d in odd.dists)
    for dist in odd.dists:
        assert odd.digest(dist.filename) == (dist.sha256, dist.size)
        assert odd.digest(dist.metadata_filename) == (dist.metadata_sha256, dist.metadata_size)


def test_a_row_noted_again_while_it_was_written_is_still_due(tmp_path: Path) -> None:
    from relay.storage.catalog import Recorded, Unwritten

    first, second = _content_exports(tmp_path, 2)
    unwritten = Unwritten()
    unwritten.loaded({"gone": Recorded(stamp=(0,), export=first, size=0)})
    row = Recorded(stamp=(1,), export=first, size=1)
    unwritten.note(first.key, row)
    unwritten.note("not-listed", row)
    due = unwritten.due([first.key, second.key])
    assert due == ({first.key: row}, {"gone"})  # rows of manifests no longer listed are not written
    newer = Recorded(stamp=(2,), export=first, size=2)
    unwritten.note(first.key, newer)  # the manifest read again while the write ran
    unwritten.written(*due)
    assert unwritten.keys == {first.key}
    assert unwritten.due([first.key, second.key]) == ({first.key: newer}, set())
    unwritten.written({first.key: newer}, set())
    assert unwritten.due([first.key, second.key]) is None

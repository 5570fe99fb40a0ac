"""DiskStore: listing, skipping corrupt and half-written exports, symlinks, eviction."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from relay.contract import MANIFEST, ContractError, parse_manifest, read_export
from relay.storage.catalog import CATALOG
from relay.storage.store import DiskStore, EvictionPolicy
from relay_testing.exports import fake_sha, write_export


def test_lists_valid_exports(store_dir: Path) -> None:
    export = write_export(store_dir, fake_sha(1), 1)
    store = DiskStore(store_dir, scan_interval=0)
    assert list(store.exports()) == [export.key]
    assert store.exports()[export.key].export == export
    assert store.exports()[export.key].size > sum(d.size for d in export.dists)


@pytest.mark.parametrize(
    "damage",
    ["bad_json", "wrong_format", "missing_wheel", "short_wheel", "wrong_dir", "no_manifest", "symlinked_wheel"],
)
def test_skips_broken_exports_with_one_log_line(
    store_dir: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = write_export(store_dir, fake_sha(1), 1)
    bad = write_export(store_dir, fake_sha(2), 2)
    directory = store_dir / bad.key
    manifest = directory / MANIFEST
    wheel = directory / bad.dists[0].filename
    if damage == "bad_json":
        manifest.write_text("{not json")
    elif damage == "wrong_format":
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format": 99}))
    elif damage == "missing_wheel":
        wheel.unlink()
    elif damage == "short_wheel":
        wheel.write_bytes(wheel.read_bytes()[:10])
    elif damage == "wrong_dir":
        os.rename(directory, store_dir / fake_sha(3))
    elif damage == "no_manifest":
        manifest.unlink()
    elif damage == "symlinked_wheel":
        target = store_dir.parent / "elsewhere.whl"
        target.write_bytes(wheel.read_bytes())
        wheel.unlink()
        wheel.symlink_to(target)
    store = DiskStore(store_dir, scan_interval=0)
    with caplog.at_level(logging.WARNING, logger="relay.store"):
        assert list(store.exports()) == [good.key]
        store.exports()
    assert len([r for r in caplog.records if "skipping" in r.getMessage()]) == 1
    assert len(store.problems) == 1


def test_ignores_dot_dirs_and_files(store_dir: Path) -> None:
    export = write_export(store_dir, fake_sha(1), 1)
    (store_dir / ".tmp-half-written").mkdir()
    (store_dir / "README").write_text("not an export")
    assert list(DiskStore(store_dir, scan_interval=0).exports()) == [export.key]


def test_refuses_symlinked_export_dirs(store_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    export = write_export(outside, fake_sha(1), 1)
    (store_dir / export.key).symlink_to(outside / export.key)
    store = DiskStore(store_dir, scan_interval=0)
    assert dict(store.exports()) == {}
    assert "symlink" in store.problems[export.key]
    assert store.open_file(export.key, export.dists[0].filename) is None


def test_open_serves_only_listed_names(store_dir: Path) -> None:
    export = write_export(store_dir, fake_sha(1), 1)
    store = DiskStore(store_dir, scan_interval=0)
    store.exports()
    dist = export.dists[0]
    with store.open_file(export.key, dist.filename) as file:  # type: ignore[union-attr]
        assert file.read() == (store_dir / export.key / dist.filename).read_bytes()
    for name in (MANIFEST, "../" + dist.filename, "/etc/passwd", "simple/index.html", dist.filename + "x"):
        assert store.open_file(export.key, name) is None


def test_open_follows_no_symlink_made_after_the_scan(store_dir: Path, tmp_path: Path) -> None:
    export = write_export(store_dir, fake_sha(1), 1)
    dist = export.dists[0]
    store = DiskStore(store_dir, scan_interval=3600)
    assert list(store.exports()) == [export.key]
    # The whole export directory swapped for a symlink to a copy elsewhere, between two scans.
    os.rename(store_dir / export.key, tmp_path / "elsewhere")
    (store_dir / export.key).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ContractError, match="export directory cannot be opened"):
        store.open_file(export.key, dist.filename)
    (store_dir / export.key).unlink()
    assert store.open_file(export.key, dist.filename) is None  # gone: not served, not an error


def test_an_export_replaced_with_the_same_manifest_stamp_is_read_again(store_dir: Path, tmp_path: Path) -> None:
    from relay_testing.exports import CHAIN

    old = write_export(store_dir, fake_sha(1), 1, dists=CHAIN[:2])
    store = DiskStore(store_dir, scan_interval=0)
    assert store.exports()[old.key].export == old
    st = (store_dir / old.key / MANIFEST).stat()
    os.rename(store_dir / old.key, tmp_path / "old")
    new = write_export(store_dir, fake_sha(1), 1, dists=CHAIN[2:])
    manifest = store_dir / new.key / MANIFEST
    # As `cp -p` or `rsync -a` of an export of the same manifest size would leave it.
    manifest.write_text(manifest.read_text()[: st.st_size].ljust(st.st_size))
    os.utime(manifest, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (manifest.stat().st_mtime_ns, manifest.stat().st_size) == (st.st_mtime_ns, st.st_size)
    assert store.exports().get(old.key) is None or store.exports()[old.key].export != old


def test_manifest_validation_messages(store_dir: Path) -> None:
    export = write_export(store_dir, fake_sha(1), 1)
    data = json.loads((store_dir / export.key / MANIFEST).read_text())
    data["dists"][0]["filename"] = "../../etc/passwd.whl"
    with pytest.raises(ContractError, match="not a plain wheel file name"):
        parse_manifest(json.dumps(data).encode(), "m.json")
    data["dists"][0]["filename"] = export.dists[0].filename
    data["dists"][0]["project"] = "Not-Normalized"
    with pytest.raises(ContractError, match="not the normalized name"):
        parse_manifest(json.dumps(data).encode(), "m.json")
    assert read_export(store_dir / export.key) == export


def test_eviction_by_age_and_size(store_dir: Path) -> None:
    exports = [write_export(store_dir, fake_sha(n), n) for n in range(1, 5)]
    store = DiskStore(store_dir, scan_interval=0)
    now = time.time()
    for age_days, export in zip((40, 20, 10, 0), exports):
        stamp = now - age_days * 86400
        os.utime(store_dir / export.key, (stamp, stamp))
    assert store.evict_now(EvictionPolicy(max_age_seconds=30 * 86400), now=now) == [exports[0].key]
    assert not (store_dir / exports[0].key).exists()
    cap = sum(store.exports()[e.key].size for e in (exports[1], exports[3]))
    with store.pin(exports[1].key):
        # The oldest (exports[1]) is in use: the size cap takes the next oldest instead.
        evicted = store.evict_now(EvictionPolicy(max_age_seconds=None, max_size_bytes=cap), now=now)
    assert evicted == [exports[2].key]
    assert sorted(store.exports()) == sorted([exports[1].key, exports[3].key])
    assert [p.name for p in store_dir.iterdir() if p.name.startswith(".") and p.name != CATALOG] == []


def test_touch_keeps_an_export(store_dir: Path) -> None:
    export = write_export(store_dir, fake_sha(1), 1)
    old = time.time() - 40 * 86400
    os.utime(store_dir / export.key, (old, old))
    store = DiskStore(store_dir, scan_interval=0)
    store.touch(export.key)
    assert store.evict_now(EvictionPolicy()) == []
    # The last use survives a restart: it is the directory's mtime.
    assert DiskStore(store_dir).last_used(export.key) > time.time() - 60


def test_publish_is_atomic_and_idempotent(store_dir: Path) -> None:
    store = DiskStore(store_dir, scan_interval=0)
    staging = store.staging_dir()
    export = write_export(staging, fake_sha(1), 1)
    stored = store.publish_now(staging / export.key)
    assert stored.export == export
    again = store.staging_dir()
    write_export(again, fake_sha(1), 1)
    assert store.publish_now(again / export.key).export == export
    assert list(store.exports()) == [export.key]


def _long_path_under(directory: Path) -> None:
    """A file whose path is longer than PATH_MAX (4096), made with relative opens."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(20):
            os.mkdir("d" * 250, dir_fd=fd)
            inner = os.open("d" * 250, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(os.open("deep.html", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def test_the_scan_skips_what_it_cannot_read_and_follows_nothing_outside(
    store_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from relay.cli import main

    linked = write_export(store_dir, fake_sha(1), 1)
    deep = write_export(store_dir, fake_sha(2), 2)
    # `simple -> a big tree elsewhere`: never walked (a 1 GiB sparse file stands for /usr).
    outside = tmp_path / "usr"
    outside.mkdir()
    with open(outside / "big", "wb") as f:
        f.truncate(1 << 30)
    shutil.rmtree(store_dir / linked.key / "simple")
    (store_dir / linked.key / "simple").symlink_to(outside)
    _long_path_under(store_dir / deep.key / "simple")
    store = DiskStore(store_dir, scan_interval=0)
    with caplog.at_level(logging.WARNING, logger="relay.store"):
        exports = store.exports()
        store.exports()
    assert sorted(exports) == sorted([linked.key, deep.key])
    assert exports[linked.key].size < 1 << 20
    # The static tree is not part of an export's size (docs/design.md): the scan never walks it.
    assert exports[deep.key].size == deep.size((store_dir / deep.key / "manifest.json").stat().st_size)
    assert not [r for r in caplog.records if "deep" in r.getMessage() or "too long" in r.getMessage()]
    assert main(["check", str(store_dir)]) in (0, 1)
    assert linked.key in capsys.readouterr().out


def big_manifest(directory: Path, valid: bool) -> None:
    """Pad a manifest to 4.5 MB (unknown fields are allowed); invalid: a bad field at the end."""
    manifest = directory / MANIFEST
    data = json.loads(manifest.read_text())
    data["padding"] = "x" * 4_500_000
    if not valid:
        data["count"] = "not a number"
    manifest.write_text(json.dumps(data))


def counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The export directories the store reads a manifest of (`read_export`), in order, from now on."""
    import relay.storage.store as store_module

    reads: list[str] = []
    real_read = store_module.read_export

    def counting_read(directory: Path, *args):  # type: ignore[no-untyped-def]
        reads.append(directory.name)
        return real_read(directory, *args)

    monkeypatch.setattr(store_module, "read_export", counting_read)
    return reads


def test_a_bad_manifest_is_parsed_once_per_change(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = write_export(store_dir, fake_sha(1), 1)
    big_manifest(store_dir / bad.key, valid=False)
    reads = counted_reads(monkeypatch)
    store = DiskStore(store_dir, scan_interval=0)
    for _ in range(5):
        assert dict(store.exports()) == {}
    assert reads == [bad.key]
    assert "wrong type" in store.problems[bad.key]
    # Changed: read again.
    (store_dir / bad.key / MANIFEST).write_text((store_dir / bad.key / MANIFEST).read_text() + " ")
    store.exports()
    assert reads == [bad.key, bad.key]


def test_large_manifests_are_parsed_off_the_calling_thread(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import relay.storage.store as store_module

    good = write_export(store_dir, fake_sha(1), 1)
    big = write_export(store_dir, fake_sha(2), 2)
    big_manifest(store_dir / big.key, valid=True)
    threads: list[str] = []
    real_read = store_module.read_export

    def recording_read(directory: Path, *args):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return real_read(directory, *args)

    monkeypatch.setattr(store_module, "read_export", recording_read)
    store = DiskStore(store_dir, scan_interval=0, background_parse_bytes=1 << 20)
    try:
        # The small one is listed at once; the big one once its parse in the background is done.
        assert good.key in store.exports()
        for _ in range(200):
            if big.key in store.exports():
                break
            time.sleep(0.05)
        assert sorted(store.exports()) == sorted([good.key, big.key])
        assert threads.count(threading.current_thread().name) == 1
        assert len(threads) == 2
    finally:
        store.close_parser()


def test_a_scan_reads_each_hard_linked_file_size_once(store_dir: Path, tmp_path: Path) -> None:
    """Exports that hard-link their unchanged files (as the goal and a pull build's publish do) cost
    one `lstat` per distinct file in a scan, not one per listed name; a half-copied file (an inode
    of its own) is still caught."""
    from relay.storage.store import check_listed_files

    export = write_export(store_dir, fake_sha(1), 1)
    copies = [tmp_path / f"copy-{n}" for n in range(3)]
    for copy in copies:
        shutil.copytree(store_dir / export.key, copy, copy_function=os.link)
    sizes: dict[int, int] = {}
    for directory in (store_dir / export.key, *copies):
        check_listed_files(directory, export, sizes)
    assert len(sizes) == 2 * len(export.dists)  # each distinct file once, not once per directory
    half = tmp_path / "half"
    shutil.copytree(store_dir / export.key, half)  # files of their own
    wheel = half / export.dists[0].filename
    wheel.write_bytes(wheel.read_bytes()[:10])
    with pytest.raises(ContractError, match="10 bytes, the manifest says"):
        check_listed_files(half, export, sizes)


def test_out_of_file_descriptors_is_not_a_damaged_export(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file check lists the export's directory (a descriptor): running out of them for a moment
    raises the OSError the scan keeps the last listing for, not a ContractError that drops the export."""
    import errno

    from relay.storage.store import check_listed_files

    export = write_export(store_dir, fake_sha(1), 1)

    def no_descriptors(path: object) -> object:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(os, "scandir", no_descriptors)
    with pytest.raises(OSError) as raised:
        check_listed_files(store_dir / export.key, export)
    assert not isinstance(raised.value, ContractError) and raised.value.errno == errno.EMFILE


def test_a_pin_held_by_another_process_keeps_the_export(store_dir: Path) -> None:
    import subprocess
    import sys

    import relay

    pinned = write_export(store_dir, fake_sha(1), 1)
    free = write_export(store_dir, fake_sha(2), 2)
    # Another worker of `relay serve --workers N`: its own process and DiskStore over the same store.
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys; from pathlib import Path; from relay.storage.store import DiskStore\n"
            f"store = DiskStore(Path({str(store_dir)!r}))\n"
            f"with store.pin({pinned.key!r}):\n"
            "    print('held', flush=True); sys.stdin.read()\n"
        )],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(relay.__file__).resolve().parent.parent)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        store = DiskStore(store_dir, scan_interval=0)
        assert store.evict_now(EvictionPolicy(max_age_seconds=0), now=time.time() + 10) == [free.key]
        assert list(store.exports()) == [pinned.key]
    finally:
        holder.communicate("", timeout=30)
    assert store.evict_now(EvictionPolicy(max_age_seconds=0), now=time.time() + 10) == [pinned.key]
    assert [p.name for p in store_dir.iterdir() if p.name != CATALOG] == []


def _scans(store: DiskStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names each later scan reads the manifest stamp of (a `stat` each)."""
    visited: list[str] = []
    load = store._load

    def spy(entry: os.DirEntry[str], stamps: dict[str, tuple[int, ...]], sizes: dict[int, int] | None = None) -> object:
        visited.append(entry.name)
        return load(entry, stamps, sizes)

    monkeypatch.setattr(store, "_load", spy)
    return visited


def _next_scan(store: DiskStore, seconds: float = 1.0) -> None:
    """Run the scan the next request after `seconds` would run."""
    store._scanned_at -= seconds
    store._sliced_at -= seconds
    store.exports()


def test_a_scan_reads_what_changed_not_every_export(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from relay.storage.store import SETTLE_SECONDS

    for n in range(1, 61):
        write_export(store_dir, fake_sha(n), n)
    old = time.time() - 10 * SETTLE_SECONDS
    os.utime(store_dir, (old, old))
    store = DiskStore(store_dir, scan_interval=1.0, catalog=False)
    assert len(store.exports()) == 60
    visited = _scans(store, monkeypatch)
    _next_scan(store)
    assert len(visited) <= 3  # the root unchanged: its share of the full pass (60 / 30 a second)
    # Published: a rename into the root. The next scan reads the new export only.
    visited.clear()
    new = write_export(store_dir.parent / "staging", fake_sha(61), 61)
    os.rename(store_dir.parent / "staging" / new.key, store_dir / new.key)
    _next_scan(store)
    assert new.key in store.exports()
    assert new.key in visited and len(visited) <= 1 + 3
    # Removed: gone at the next scan, no manifest read.
    visited.clear()
    shutil.rmtree(store_dir / fake_sha(5))
    _next_scan(store)
    assert fake_sha(5) not in store.exports()
    assert len(visited) <= 3


def test_a_manifest_changed_in_place_shows_within_the_full_pass(store_dir: Path) -> None:
    from relay.storage.store import FULL_PASS_INTERVALS, SETTLE_SECONDS

    for n in range(1, 61):
        write_export(store_dir, fake_sha(n), n, branches=("main",))
    old = time.time() - 10 * SETTLE_SECONDS
    os.utime(store_dir, (old, old))
    store = DiskStore(store_dir, scan_interval=1.0, catalog=False)
    assert len(store.exports()) == 60
    manifest = store_dir / fake_sha(7) / MANIFEST
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "branches": ["release"]}))
    seen_after = None
    for scan in range(1, FULL_PASS_INTERVALS + 1):
        _next_scan(store)
        if store.exports()[fake_sha(7)].export.branches == ("release",):
            seen_after = scan
            break
    assert seen_after is not None
    manifest = store_dir / fake_sha(8) / MANIFEST
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "branches": ["release"]}))
    store.rescan()  # an explicit rescan (after a publish, an eviction) checks every manifest
    assert store.exports()[fake_sha(8)].export.branches == ("release",)


def test_a_published_large_manifest_is_listed_at_once_and_parsed_once(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull build's publish has parsed the manifest: the store lists the export as publish returns
    (a branch page asked right after shows it), without parsing it again on its thread."""
    reads = counted_reads(monkeypatch)
    store = DiskStore(store_dir, scan_interval=0, background_parse_bytes=1 << 20)
    try:
        assert store.exports() == {}
        export = write_export(tmp_path / "built", fake_sha(7), 7)
        big_manifest(tmp_path / "built" / export.key, valid=True)
        store.publish_now(tmp_path / "built" / export.key)
        assert export.key in store.exports()
        time.sleep(0.2)  # a parse on the store's thread, if one had been started, would be done
        assert reads == [export.key], "parsed again after its publish"
    finally:
        store.close_parser()


@pytest.mark.asyncio
async def test_a_commit_another_worker_published_is_found_while_its_manifest_is_parsed(
    store_dir: Path, tmp_path: Path
) -> None:
    """Another worker process published a large manifest: this worker's store, asked for that
    commit (before building it), waits for the parse on its thread rather than answer "missing"."""
    this_worker = DiskStore(store_dir, scan_interval=0, background_parse_bytes=1 << 20)
    other_worker = DiskStore(store_dir, scan_interval=0)
    try:
        assert this_worker.exports() == {}
        export = write_export(tmp_path / "built", fake_sha(8), 8)
        big_manifest(tmp_path / "built" / export.key, valid=True)
        other_worker.publish_now(tmp_path / "built" / export.key)
        found = await this_worker.find(export.key)
        assert found is not None and found.export.sha == export.sha
        async with this_worker.build_claim(export.key) as claimed:
            assert claimed is not None, "a build would start for a commit in the store"
    finally:
        this_worker.close_parser()
        other_worker.close_parser()


def test_an_export_without_a_last_use_time_is_not_evicted_by_age(tmp_path: Path) -> None:
    """A store that lists an export after reading the last-use times has none for it: it is not
    judged unused since 1970 (evicted at once), but as used now."""
    from relay.storage.store import StoredExport, to_evict

    exports = {e.key: StoredExport(export=e, size=1) for e in (write_export(tmp_path, fake_sha(n), n) for n in (1, 2))}
    now = time.time()
    old, _ = list(exports)
    policy = EvictionPolicy(max_age_seconds=30 * 24 * 3600.0)
    assert to_evict(exports, {old: now - 40 * 24 * 3600.0}, policy, now, lambda key: False) == [old]


def test_eviction_by_age_alone_does_not_count_the_footprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting every file of every export (0.9 s of a thread at 1,500 exports of 1,000 dists, each
    round, with pages waiting on the GIL meanwhile) is for a size cap only."""
    import relay.storage.store as store_module
    from relay.storage.store import StoredExport, to_evict

    def counted(*args: object) -> None:
        raise AssertionError("the footprint was counted without a size cap")

    exports = {e.key: StoredExport(export=e, size=1) for e in (write_export(tmp_path, fake_sha(n), n) for n in (1, 2))}
    now = time.time()
    old, _ = list(exports)
    monkeypatch.setattr(store_module, "Footprint", counted)
    assert to_evict(exports, {old: now - 40 * 24 * 3600.0}, EvictionPolicy(), now, lambda key: False) == [old]

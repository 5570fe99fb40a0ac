"""The contract's readers: a manifest's header alone, and dists shared across manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relay.contract import MANIFEST, ContractError, DistTable, manifest_header, parse_manifest, read_header
from relay_testing.exports import fake_sha, write_export


def test_read_header_reads_the_fields_before_the_dists(store_dir: Path) -> None:
    export = write_export(store_dir, fake_sha(1), 1, branches=("main", "release"), tags=("v1",))
    assert read_header(store_dir / export.key) == manifest_header(export)


@pytest.mark.parametrize(
    "layout", ["dists_first", "count_after_dists", "no_dists", "not_json", "empty", "missing", "array"]
)
def test_read_header_says_none_when_the_header_cannot_be_read_alone(store_dir: Path, layout: str) -> None:
    export = write_export(store_dir, fake_sha(1), 1)
    manifest = store_dir / export.key / MANIFEST
    data = json.loads(manifest.read_text())
    if layout == "dists_first":
        manifest.write_text(json.dumps({"dists": data.pop("dists"), **data}))
    elif layout == "count_after_dists":
        count = data.pop("count")
        manifest.write_text(json.dumps({**data, "count": count}))
    elif layout == "no_dists":
        del data["dists"]
        manifest.write_text(json.dumps(data))
    elif layout == "not_json":
        manifest.write_text('{"format": 2, "sha": nope')
    elif layout == "empty":
        manifest.write_text("")
    elif layout == "missing":
        manifest.unlink()
    else:
        manifest.write_text(json.dumps([data]))
    assert read_header(store_dir / export.key) is None


def test_read_header_reads_past_the_first_block_when_the_header_is_long(store_dir: Path) -> None:
    branches = tuple(f"feature/branch-{i:04d}" for i in range(400))  # about 11 KB of branch names
    export = write_export(store_dir, fake_sha(1), 1, branches=branches)
    header = read_header(store_dir / export.key)
    assert header is not None and tuple(header["branches"]) == branches


@pytest.mark.parametrize(("field", "convert"), [("size", float), ("dirty", int)])
def test_an_entry_equal_in_value_but_not_in_type_to_a_parsed_one_is_still_checked(
    store_dir: Path, field: str, convert: type
) -> None:
    """JSON's 1, 1.0 and true are equal in Python: an entry equal to a valid one parsed just before
    but with a float size or a number for a boolean is refused, as by a table that never saw it."""
    export = write_export(store_dir, fake_sha(2), 2, origins={"monorepo.chain.a": (fake_sha(1), 1)})
    raw = json.loads((store_dir / export.key / MANIFEST).read_text())
    table = DistTable()
    parse_manifest(json.dumps(raw).encode(), "first", table)
    entry = raw["dists"][0]
    entry[field] = convert(entry[field])
    assert json.loads(json.dumps(raw))["dists"][0] == json.loads((store_dir / export.key / MANIFEST).read_text())["dists"][0]
    for fresh in (DistTable(), table):
        with pytest.raises(ContractError, match="wrong type"):
            parse_manifest(json.dumps(raw).encode(), "second", fresh)


def test_an_unchanged_entry_is_the_same_dist_in_every_manifest(store_dir: Path) -> None:
    exports = [write_export(store_dir, fake_sha(n), n) for n in (1, 2)]
    table = DistTable()
    parsed = [parse_manifest((store_dir / e.key / MANIFEST).read_bytes(), e.key, table) for e in exports]
    data = json.loads((store_dir / exports[1].key / MANIFEST).read_text())
    again = parse_manifest(json.dumps(data).encode(), "again", table)
    assert all(a is b for a, b in zip(parsed[1].dists, again.dists))
    table.forget_recent()
    assert all(a is b for a, b in zip(parsed[1].dists, parse_manifest(json.dumps(data).encode(), "x", table).dists))

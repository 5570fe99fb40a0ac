"""Format 2 exports (version_scheme = "content"): per-dist versions, shared files, side by side with format 1."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from relay.conftest import MakeClient
from relay.contract import CONTENT_FORMAT, ContractError, parse_manifest, read_export
from relay.index.render import V1_JSON
from relay.storage.store import DiskStore, EvictionPolicy, Footprint
from relay_testing.exports import CHAIN, fake_sha, version_of, write_export

C = "monorepo.chain.c"
TOOLS = "monorepo.tools"


def _link_unchanged(store_dir: Path, earlier: str, later: str) -> None:
    """What the goal does for an unchanged wheel: the later export hard-links the earlier's file."""
    for path in (store_dir / later).iterdir():
        source = store_dir / earlier / path.name
        if path.suffix in (".whl", ".metadata") and source.is_file() and source.read_bytes() == path.read_bytes():
            path.unlink()
            os.link(source, path)


@pytest.fixture
def content_exports(store_dir: Path) -> list:
    """Three commits of main: a format 1 export, then two format 2 exports where only chain.a moved."""
    first = write_export(store_dir, fake_sha(1), 1)
    # Commit 2 changed chain.c (so b and a), commit 3 changed chain.a only.
    second = write_export(store_dir, fake_sha(2), 2, origins={TOOLS: (fake_sha(1), 1)})
    third = write_export(
        store_dir,
        fake_sha(3),
        3,
        origins={TOOLS: (fake_sha(1), 1), C: (fake_sha(2), 2), "monorepo.chain.b": (fake_sha(2), 2)},
    )
    _link_unchanged(store_dir, second.key, third.key)
    return [first, second, third]


def test_a_format_2_manifest_is_read_with_per_dist_versions(store_dir: Path, content_exports: list) -> None:
    third = read_export(store_dir / content_exports[2].key)
    assert third.format == CONTENT_FORMAT
    versions = {d.name: d.version for d in third.dists}
    assert versions[TOOLS] == version_of(fake_sha(1), 1)
    assert versions[C] == version_of(fake_sha(2), 2)
    assert versions["monorepo.chain.a"] == third.version == version_of(fake_sha(3), 3)
    a = third.dist("monorepo-chain-a")
    assert a is not None and f"monorepo.chain.b=={version_of(fake_sha(2), 2)}" in a.requires_dist
    assert a.origin == fake_sha(3) and a.fingerprint is not None and len(a.fingerprint) == 64


def test_a_format_2_manifest_must_name_origin_and_fingerprint(store_dir: Path, content_exports: list) -> None:
    raw = json.loads((store_dir / content_exports[2].key / "manifest.json").read_text())
    for key, value, error in (("origin", "HEAD", "origin"), ("fingerprint", "x", "fingerprint"), ("version", "v!", "PEP 440")):
        broken = json.loads(json.dumps(raw))
        broken["dists"][0][key] = value
        with pytest.raises(ContractError, match=error):
            parse_manifest(json.dumps(broken).encode(), "m.json")
    # Format 1 still requires one version for the whole export.
    old = json.loads((store_dir / content_exports[0].key / "manifest.json").read_text())
    old["dists"][0]["version"] = "0.0"
    with pytest.raises(ContractError, match="differs from the export"):
        parse_manifest(json.dumps(old).encode(), "m.json")


@pytest.mark.asyncio
async def test_a_branch_page_lists_each_distinct_file_once(make_client: MakeClient, content_exports: list) -> None:
    client: TestClient = await make_client()
    data = await (await client.get("/main/simple/monorepo-tools/", headers={"Accept": V1_JSON})).json(content_type=None)
    # Exports 1, 2 and 3 all list tools at the version of commit 1: one file on the page.
    assert [f["filename"] for f in data["files"]] == [f"monorepo_tools-{version_of(fake_sha(1), 1)}-py3-none-any.whl"]
    assert data["versions"] == [version_of(fake_sha(1), 1)]
    # The shared file is linked under the oldest export that has it, so its URL does not move.
    assert data["files"][0]["url"].startswith(f"../../../{fake_sha(1)}/")
    chain_c = await (await client.get("/main/simple/monorepo-chain-c/", headers={"Accept": V1_JSON})).json(content_type=None)
    assert chain_c["versions"] == [version_of(fake_sha(1), 1), version_of(fake_sha(2), 2)]
    assert len(chain_c["files"]) == 2
    response = await client.get("/main/simple/monorepo-chain-c/")
    assert len(re.findall(r"<a ", await response.text())) == 2


@pytest.mark.asyncio
async def test_shared_files_are_served_under_every_export(make_client: MakeClient, content_exports: list) -> None:
    client: TestClient = await make_client()
    third = content_exports[2]
    dist = third.dist("monorepo-chain-c")
    for key in (content_exports[1].key, third.key):
        response = await client.get(f"/{key}/{dist.filename}")
        assert response.status == 200 and response.headers["ETag"] == f'"{dist.sha256}"'


@pytest.mark.asyncio
async def test_constraints_pin_each_dist_at_its_own_version(make_client: MakeClient, content_exports: list) -> None:
    client: TestClient = await make_client()
    text = await (await client.get(f"/{fake_sha(3)}/constraints.txt")).text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == [
        f"monorepo.chain.a=={version_of(fake_sha(3), 3)}",
        f"monorepo.chain.b=={version_of(fake_sha(2), 2)}",
        f"{C}=={version_of(fake_sha(2), 2)}",
        f"{TOOLS}=={version_of(fake_sha(1), 1)}",
    ]


def test_eviction_counts_shared_bytes_once(store_dir: Path, content_exports: list) -> None:
    store = DiskStore(store_dir, scan_interval=0)
    second, third = (store.exports()[e.key] for e in content_exports[1:])
    shared = set(second.export.files.values()) & set(third.export.files.values())
    assert len(shared) == 6  # tools, chain.c and chain.b: wheel and .metadata each
    # The contract's size of the two together (docs/design.md): each manifest, each file once.
    on_disk = second.size + third.size - sum(size for _, size in shared)
    assert Footprint([second, third]).total == on_disk
    first = store.exports()[content_exports[0].key]
    # A cap of exactly the bytes of exports 2 and 3 (shared files once) evicts only export 1.
    now = time.time()
    for age, export in zip((3, 2, 1), content_exports):
        os.utime(store_dir / export.key, (now - age * 60, now - age * 60))
    evicted = store.evict_now(EvictionPolicy(max_age_seconds=None, max_size_bytes=on_disk), now=now)
    assert evicted == [content_exports[0].key] and first.size > 0
    # Evicting export 2 frees only its own files: export 3 still serves the shared ones.
    evicted = store.evict_now(EvictionPolicy(max_age_seconds=None, max_size_bytes=third.size), now=now)
    assert evicted == [content_exports[1].key]
    assert read_export(store_dir / content_exports[2].key) == content_exports[2]
    assert list(store.exports()) == [content_exports[2].key]


def test_publish_links_files_an_earlier_export_holds(store_dir: Path) -> None:
    store = DiskStore(store_dir, scan_interval=0)
    write_export(store_dir, fake_sha(1), 1, origins={})
    staging = store.staging_dir()
    later = write_export(staging, fake_sha(2), 2, origins={name.name: (fake_sha(1), 1) for name in CHAIN[1:]})
    store.publish_now(staging / later.key)
    for dist in later.dists:
        same = os.path.samefile(store_dir / fake_sha(1) / dist.filename, store_dir / later.key / dist.filename) if (
            store_dir / fake_sha(1) / dist.filename
        ).exists() else False
        assert same == (dist.name != "monorepo.chain.a")

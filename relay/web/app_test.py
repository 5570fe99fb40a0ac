"""Handler tests: pages, negotiation, files, redirects, refs, caching and bad input."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from pypi_simple import ProjectPage as ParsedProjectPage

from relay.web.app import Settings
from relay.conftest import MakeClient
from relay.contract import Export
from relay.index.render import V1_HTML, V1_JSON

# pytest-asyncio runs these; strict mode wants the mark, and no repository-wide setting is needed.
pytestmark = pytest.mark.asyncio

JSON = {"Accept": V1_JSON}


async def test_root_index_html(client: TestClient, exports: list[Export]) -> None:
    response = await client.get("/main/simple/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    text = await response.text()
    assert '<meta name="pypi:repository-version" content="1.1">' in text
    assert re.findall(r'href="([^"]+)"', text) == [
        "monorepo-chain-a/", "monorepo-chain-b/", "monorepo-chain-c/", "monorepo-tools/"
    ]


async def test_root_index_json(client: TestClient) -> None:
    response = await client.get("/main/simple/", headers=JSON)
    assert response.headers["Content-Type"] == V1_JSON
    data = await response.json(content_type=None)
    assert data["meta"] == {"api-version": "1.1"}
    assert [p["name"] for p in data["projects"]][:2] == ["monorepo-chain-a", "monorepo-chain-b"]


async def test_sha_index_lists_exactly_that_commit(client: TestClient, exports: list[Export]) -> None:
    sha = exports[1].sha
    text = await (await client.get(f"/{sha}/simple/monorepo-chain-a/")).text()
    dist = exports[1].dist("monorepo-chain-a")
    assert dist is not None
    links = re.findall(r'<a href="([^"]+)"([^>]*)>([^<]+)</a>', text)
    assert len(links) == 1
    href, attributes, name = links[0]
    assert name == dist.filename
    assert href == f"../../../{sha}/{dist.filename.replace('+', '%2B')}#sha256={dist.sha256}"
    assert 'data-requires-python="&gt;=3.7"' in attributes
    assert f'data-core-metadata="sha256={dist.metadata_sha256}"' in attributes
    assert f'data-dist-info-metadata="sha256={dist.metadata_sha256}"' in attributes


async def test_branch_index_lists_the_branch_history(client: TestClient, exports: list[Export]) -> None:
    data = await (await client.get("/main/simple/monorepo-chain-a/", headers=JSON)).json(content_type=None)
    assert data["versions"] == [exports[0].version, exports[1].version, exports[2].version]
    assert [f["filename"] for f in data["files"]] == [
        e.dist("monorepo-chain-a").filename for e in exports[:3]  # type: ignore[union-attr]
    ]
    feature = await (await client.get("/feature/x/simple/monorepo-chain-a/", headers=JSON)).json(
        content_type=None
    )
    assert feature["versions"] == [exports[3].version]
    # Links resolve from the page: one more level for the slash in the branch name.
    assert feature["files"][0]["url"].startswith(f"../../../../{exports[3].sha}/")


async def test_json_project_page_fields(client: TestClient, exports: list[Export]) -> None:
    data = await (await client.get(f"/{exports[0].sha}/simple/monorepo-chain-b/", headers=JSON)).json(
        content_type=None
    )
    dist = exports[0].dist("monorepo-chain-b")
    assert dist is not None
    (entry,) = data["files"]
    assert entry["hashes"] == {"sha256": dist.sha256}
    assert entry["core-metadata"] == {"sha256": dist.metadata_sha256}
    assert "dist-info-metadata" not in entry
    assert entry["size"] == dist.size
    assert entry["requires-python"] == ">=3.7"
    assert data["meta"]["api-version"] == "1.1"
    assert data["name"] == "monorepo-chain-b"


async def test_pypi_simple_parses_json_and_html(client: TestClient, exports: list[Export]) -> None:
    url = f"/{exports[0].sha}/simple/monorepo-chain-a/"
    for accept in (V1_JSON, V1_HTML):
        response = await client.get(url, headers={"Accept": accept})
        if accept == V1_JSON:
            page = ParsedProjectPage.from_json_data(await response.json(content_type=None), str(response.url))
        else:
            page = ParsedProjectPage.from_html("monorepo-chain-a", await response.read(), str(response.url))
        (package,) = page.packages
        assert package.version == exports[0].version
        assert package.package_type == "wheel"
        assert package.digests["sha256"] == exports[0].dist("monorepo-chain-a").sha256  # type: ignore[union-attr]
        assert package.has_metadata
        assert package.requires_python == ">=3.7"
        assert package.url.startswith(str(client.make_url(f"/{exports[0].sha}/")))


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("*/*", "text/html"),
        ("text/html", "text/html"),
        (V1_HTML, V1_HTML),
        (V1_JSON, V1_JSON),
        ("application/vnd.pypi.simple.latest+json", V1_JSON),
        (f"{V1_JSON}, {V1_HTML};q=0.1, text/html;q=0.01", V1_JSON),  # what pip sends
        (f"{V1_JSON};q=0.5, text/html", "text/html"),
        ("application/*;q=0.9, text/html;q=0.1", V1_HTML),
        (f"text/html;q=0, {V1_JSON}", V1_JSON),
    ],
)
async def test_content_negotiation(client: TestClient, accept: str | None, expected: str) -> None:
    headers = {"Accept": accept} if accept else {}
    response = await client.get("/main/simple/monorepo-tools/", headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"].split(";")[0] == expected


async def test_nothing_acceptable_is_406(client: TestClient) -> None:
    response = await client.get("/main/simple/monorepo-tools/", headers={"Accept": "application/xml"})
    assert response.status == 406
    assert V1_JSON in await response.text()


async def test_format_query_overrides_accept(client: TestClient) -> None:
    response = await client.get("/main/simple/", params={"format": V1_JSON}, headers={"Accept": "text/html"})
    assert response.headers["Content-Type"] == V1_JSON


async def test_files_and_metadata(client: TestClient, exports: list[Export], store_dir: Path) -> None:
    export = exports[2]
    dist = export.dist("monorepo-chain-a")
    assert dist is not None
    wheel = await client.get(f"/{export.sha}/{dist.filename}")
    assert wheel.status == 200
    body = await wheel.read()
    assert hashlib.sha256(body).hexdigest() == dist.sha256
    assert "immutable" in wheel.headers["Cache-Control"]
    metadata = await client.get(f"/{export.sha}/{dist.filename.replace('+', '%2B')}.metadata")
    assert metadata.status == 200
    assert hashlib.sha256(await metadata.read()).hexdigest() == dist.metadata_sha256
    assert "Requires-Dist: monorepo.chain.b==" in (await metadata.text())
    # Through a branch: found among the branch's exports, but not cached for good.
    older = exports[0].dist("monorepo-chain-a")
    assert older is not None
    via_branch = await client.get(f"/main/{older.filename}")
    assert via_branch.status == 200
    assert "immutable" not in via_branch.headers["Cache-Control"]
    # A file of another commit is not a file of this sha, and a file not in the manifest is no file.
    assert (await client.get(f"/{export.sha}/{older.filename}")).status == 404
    (store_dir / export.key / "extra-1.0-py3-none-any.whl").write_bytes(b"not listed")
    assert (await client.get(f"/{export.sha}/extra-1.0-py3-none-any.whl")).status == 404


async def test_files_carry_their_sha256_as_etag_and_come_from_memory(
    make_client: MakeClient, exports: list[Export], store_dir: Path
) -> None:
    client = await make_client()
    export = exports[2]
    dist = export.dist("monorepo-chain-a")
    assert dist is not None
    url = f"/{export.sha}/{dist.filename}"
    first = await client.get(url)
    assert first.headers["ETag"] == f'"{dist.sha256}"'
    assert (await client.get(url, headers={"If-None-Match": f'"{dist.sha256}"'})).status == 304
    # Served from memory once read: the bytes on disk are no longer consulted.
    (store_dir / export.key / dist.filename).write_bytes(b"changed behind the relay's back")
    again = await client.get(url)
    assert hashlib.sha256(await again.read()).hexdigest() == dist.sha256


async def test_a_file_that_does_not_match_its_manifest_is_not_served(
    make_client: MakeClient, exports: list[Export], store_dir: Path
) -> None:
    client = await make_client()
    export = exports[2]
    dist = export.dist("monorepo-chain-a")
    assert dist is not None
    path = store_dir / export.key / dist.filename
    path.write_bytes(b"x" * path.stat().st_size)  # same size, other bytes
    response = await client.get(f"/{export.sha}/{dist.filename}")
    assert response.status == 502
    assert "damaged" in await response.text()


async def test_without_the_memory_cache_files_stream_from_disk(
    make_client: MakeClient, exports: list[Export]
) -> None:
    client = await make_client(Settings(memory_cache_bytes=0))
    export = exports[2]
    dist = export.dist("monorepo-chain-a")
    assert dist is not None
    response = await client.get(f"/{export.sha}/{dist.filename}")
    assert response.status == 200
    assert hashlib.sha256(await response.read()).hexdigest() == dist.sha256
    # Streamed files carry their sha256 as ETag too, as the docs promise.
    assert response.headers["ETag"] == f'"{dist.sha256}"'
    assert response.headers["Content-Length"] == str(dist.size)
    revalidated = await client.get(f"/{export.sha}/{dist.filename}", headers={"If-None-Match": f'"{dist.sha256}"'})
    assert revalidated.status == 304
    head = await client.head(f"/{export.sha}/{dist.filename}")
    assert head.status == 200 and head.headers["Content-Length"] == str(dist.size)


@pytest.mark.parametrize("memory_cache_bytes", [0, 128 * 1024 * 1024])
@pytest.mark.parametrize("damage", ["symlink_same_size", "symlink_passwd", "same_size_bytes", "fifo", "dir_symlink"])
async def test_files_changed_after_loading_are_not_served(
    make_client: MakeClient, exports: list[Export], store_dir: Path, tmp_path: Path, damage: str,
    memory_cache_bytes: int,
) -> None:
    import os

    client = await make_client(Settings(memory_cache_bytes=memory_cache_bytes))
    export = exports[2]
    dist = export.dist("monorepo-chain-a")
    assert dist is not None
    url = f"/{export.sha}/{dist.filename}"
    # Served once first: streamed (and its sha256 checked and remembered), or another file read
    # into memory (a file in memory is served from there, right whatever the disk holds).
    first = dist if memory_cache_bytes == 0 else export.dist("monorepo-chain-b")
    assert first is not None
    assert (await client.get(f"/{export.sha}/{first.filename}")).status == 200
    path = store_dir / export.key / dist.filename
    original = path.read_bytes()
    if damage == "symlink_same_size":
        target = tmp_path / "same-size.whl"
        target.write_bytes(b"x" * len(original))
        path.unlink()
        path.symlink_to(target)
    elif damage == "symlink_passwd":
        path.unlink()
        path.symlink_to("/etc/passwd")
    elif damage == "same_size_bytes":
        path.write_bytes(b"y" * len(original))
    elif damage == "fifo":
        path.unlink()
        os.mkfifo(path)
    elif damage == "dir_symlink":
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / dist.filename).write_bytes(b"z" * len(original))
        os.rename(store_dir / export.key, tmp_path / "moved")
        (store_dir / export.key).symlink_to(outside)
    response = await client.get(url)
    body = await response.read()
    assert response.status in (404, 502), (response.status, body[:100])
    assert b"root:" not in body and body[:1] not in (b"x", b"y", b"z")


async def test_a_replaced_export_is_served_with_its_new_pages_and_files(
    make_client: MakeClient, store_dir: Path, tmp_path: Path
) -> None:
    import os

    from relay_testing.exports import CHAIN, DistSpec, fake_sha, write_export

    sha = fake_sha(7)
    old = write_export(store_dir, sha, 7, dists=(CHAIN[3],))
    client = await make_client()
    old_page = await (await client.get(f"/{sha}/simple/monorepo-tools/", headers=JSON)).json(content_type=None)
    assert old_page["files"][0]["hashes"]["sha256"] == old.dists[0].sha256
    assert (await client.get("/main/simple/monorepo-tools/", headers=JSON)).status == 200
    # Re-exported under the same name with more dists and other bytes (allowed by design.md).
    os.rename(store_dir / sha, tmp_path / "old-export")
    new = write_export(store_dir, sha, 7, dists=(CHAIN[2], DistSpec("monorepo.tools", requires_python=">=3.8")))
    new_tools = new.dist("monorepo-tools")
    assert new_tools is not None and new_tools.sha256 != old.dists[0].sha256
    for ref in (sha, "main"):
        page = await (await client.get(f"/{ref}/simple/monorepo-tools/", headers=JSON)).json(content_type=None)
        assert [f["hashes"]["sha256"] for f in page["files"]] == [new_tools.sha256], ref
        root = await (await client.get(f"/{ref}/simple/", headers=JSON)).json(content_type=None)
        assert [p["name"] for p in root["projects"]] == ["monorepo-chain-c", "monorepo-tools"], ref
    wheel = await client.get(f"/{sha}/{new_tools.filename}")
    assert hashlib.sha256(await wheel.read()).hexdigest() == new_tools.sha256


async def test_head_on_every_route(client: TestClient, exports: list[Export]) -> None:
    dist = exports[0].dist("monorepo-tools")
    assert dist is not None
    for path in (
        "/-/health",
        "/main/simple/",
        "/simple/monorepo-tools/",
        "/main/constraints.txt",
        f"/{exports[0].sha}/{dist.filename}",
    ):
        get = await client.get(path)
        head = await client.head(path)
        assert head.status == get.status == 200, path
        assert await head.read() == b""
        assert head.headers.get("Content-Length") == get.headers.get("Content-Length"), path


async def test_default_ref(make_client: MakeClient, exports: list[Export]) -> None:
    client = await make_client(Settings(default_ref="feature/x"))
    data = await (await client.get("/simple/monorepo-tools/", headers=JSON)).json(content_type=None)
    assert data["versions"] == [exports[3].version]
    assert data["files"][0]["url"].startswith(f"../../{exports[3].sha}/")


async def test_short_sha_and_tag(client: TestClient, exports: list[Export]) -> None:
    short = exports[1].sha[:7]
    data = await (await client.get(f"/{short}/simple/monorepo-tools/", headers=JSON)).json(content_type=None)
    assert data["versions"] == [exports[1].version]
    tagged = await client.get("/v1/simple/monorepo-tools/", headers=JSON)
    assert (await tagged.json(content_type=None))["versions"] == [exports[1].version]
    assert "immutable" not in tagged.headers["Cache-Control"]


async def test_ambiguous_short_sha(make_client: MakeClient, store_dir: Path) -> None:
    from relay_testing.exports import write_export

    write_export(store_dir, "abcd" + "0" * 36, 1)
    write_export(store_dir, "abcd" + "1" * 36, 2)
    client = await make_client()
    response = await client.get("/abcd/simple/")
    assert response.status == 404
    assert "ambiguous" in await response.text()
    assert (await client.get("/abcd1/simple/")).status == 200


async def test_constraints(client: TestClient, exports: list[Export]) -> None:
    response = await client.get("/main/constraints.txt")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    lines = [l for l in (await response.text()).splitlines() if not l.startswith("#")]
    assert lines == [f"{d.name}=={d.version}" for d in exports[2].dists]
    assert response.headers["X-Relay-Commit"] == exports[2].sha


async def test_non_normalized_names_redirect(client: TestClient) -> None:
    for path, location in [
        ("/main/simple/Monorepo.Chain_A/", "../monorepo-chain-a/"),
        ("/main/simple/monorepo-chain-a", "monorepo-chain-a/"),
        ("/main/simple/Monorepo.Tools", "monorepo-tools/"),
        ("/main/simple", "simple/"),
    ]:
        response = await client.get(path, allow_redirects=False)
        assert response.status == 301, path
        assert response.headers["Location"] == location
    followed = await client.get("/main/simple/Monorepo.Chain_A/")
    assert followed.status == 200
    assert str(followed.url).endswith("/main/simple/monorepo-chain-a/")


async def test_upstream_redirect_without_shadowing(make_client: MakeClient, exports: list[Export]) -> None:
    client = await make_client(Settings(upstream="https://upstream.invalid/simple/", namespaces=("corp",)))
    response = await client.get("/main/simple/Requests/", allow_redirects=False)
    assert response.status == 301  # normalize first
    response = await client.get("/main/simple/requests/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "https://upstream.invalid/simple/requests/"
    # A monorepo name is never sent upstream: not one this commit has, nor one in the namespace.
    for name in ("monorepo-chain-a", "monorepo-not-yet", "corp-thing", "monorepo"):
        response = await client.get(f"/{exports[0].sha}/simple/{name}/", allow_redirects=False)
        assert response.status in (200, 404), name
    response = await client.get(f"/{exports[0].sha}/simple/monorepo-not-yet/", allow_redirects=False)
    assert response.status == 404
    assert "no dist" in await response.text()


async def test_no_upstream_is_a_clear_404(client: TestClient) -> None:
    response = await client.get("/main/simple/requests/")
    assert response.status == 404
    assert "no --upstream" in await response.text()


async def test_unknown_and_malformed(client: TestClient) -> None:
    for path, status in [
        ("/nope/simple/", 404),
        ("/" + "f" * 40 + "/simple/", 404),
        ("/main/simple/-bad-/", 400),
        ("/main/simple/a%20b/", 400),
        ("/-x/simple/", 400),
        ("/main/nothing.whl", 404),
        ("/main/unknown-route", 404),
    ]:
        response = await client.get(path, allow_redirects=False)
        assert response.status == status, (path, response.status)
        assert len(await response.text()) < 500


@pytest.mark.parametrize(
    "path",
    [
        "/main/../../etc/passwd",
        "/main/simple/..%2F..%2Fetc%2Fpasswd/",
        "/main%2Fsimple/",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/main/simple/%5C..%5C/",
        "/main//simple/",
        "//etc/passwd",
        "/" + "a" * 40 + "/..%2Fmanifest.json",
    ],
)
async def test_traversal_is_refused(client: TestClient, path: str) -> None:
    # Raw request targets, as an attacker sends them (no client-side normalization).
    reader, writer = await _raw_connection(client)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    response = await reader.read()
    writer.close()
    status = int(response.split(b" ", 2)[1])
    assert status in (400, 404), (path, response[:200])
    assert b"root:" not in response


async def test_oversized_headers_are_refused(client: TestClient) -> None:
    reader, writer = await _raw_connection(client)
    writer.write(f"GET /main/simple/ HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 20000}\r\n\r\n".encode())
    response = await reader.read(100)
    writer.close()
    assert re.match(rb"HTTP/1\.[01] 4\d\d ", response), response


async def _raw_connection(client: TestClient):  # type: ignore[no-untyped-def]
    import asyncio

    return await asyncio.open_connection(client.host, client.port)


async def test_etag_and_304(client: TestClient, exports: list[Export]) -> None:
    url = f"/{exports[0].sha}/simple/monorepo-tools/"
    first = await client.get(url, headers=JSON)
    etag = first.headers["ETag"]
    assert "immutable" in first.headers["Cache-Control"]
    again = await client.get(url, headers={**JSON, "If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""
    other_type = await client.get(url, headers={"Accept": "text/html", "If-None-Match": etag})
    assert other_type.status == 200
    constraints = await client.get("/main/constraints.txt")
    again = await client.get("/main/constraints.txt", headers={"If-None-Match": constraints.headers["ETag"]})
    assert again.status == 304
    branch = await client.get("/main/simple/monorepo-tools/")
    assert re.fullmatch(r"public, max-age=\d+", branch.headers["Cache-Control"])


async def test_gzip(client: TestClient) -> None:
    response = await client.get(
        "/main/simple/monorepo-chain-a/", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    assert b"monorepo_chain_a" in gzip.decompress(await response.read())
    plain = await client.get("/main/simple/monorepo-chain-a/", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert plain.headers["ETag"] != response.headers["ETag"]


async def test_health(client: TestClient) -> None:
    response = await client.get("/-/health")
    assert (await response.json())["exports"] == 4


async def test_new_export_is_served_without_restart(client: TestClient, store_dir: Path) -> None:
    from relay_testing.exports import fake_sha, write_export

    assert (await client.get(f"/{fake_sha(9)}/simple/")).status == 404
    export = write_export(store_dir, fake_sha(9), 9)
    response = await client.get("/main/simple/monorepo-tools/", headers=JSON)
    assert (await response.json(content_type=None))["versions"][-1] == export.version
    assert (await client.get(f"/{fake_sha(9)}/simple/")).status == 200


async def test_dirty_export_is_never_the_commit(
    make_client: MakeClient, store_dir: Path, exports: list[Export]
) -> None:
    from relay_testing.exports import fake_sha, write_export

    write_export(store_dir, fake_sha(5), 5, dirty=True)
    client = await make_client()
    assert (await client.get(f"/{fake_sha(5)}/simple/")).status == 404
    assert (await client.get(f"/{fake_sha(5)}.dirty/simple/")).status == 200
    data = await (await client.get("/main/simple/monorepo-tools/", headers=JSON)).json(content_type=None)
    assert not any("dirty" in v for v in data["versions"])


async def test_format_query_with_an_unencoded_plus(client: TestClient) -> None:
    # What a person types in a browser or curl: the `+` of the media type is not percent-encoded.
    reader, writer = await _raw_connection(client)
    writer.write(f"GET /main/simple/?format={V1_JSON} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    response = await reader.read()
    writer.close()
    assert response.startswith(b"HTTP/1.1 200 "), response[:200]
    assert f"Content-Type: {V1_JSON}".encode() in response


async def test_a_malformed_request_line_logs_one_line_without_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with caplog.at_level(logging.DEBUG):
        for garbage in (b"GET / HTTP/1.1 extra\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n", b"GET /\x00 HTTP/1.1\r\n\r\n"):
            reader, writer = await _raw_connection(client)
            writer.write(garbage)
            response = await reader.read()
            writer.close()
            assert re.match(rb"HTTP/1\.[01] 400 ", response), response[:200]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], [
        (r.levelname, r.getMessage()) for r in caplog.records
    ]
    bad = [r for r in caplog.records if "bad request" in r.getMessage()]
    assert len(bad) == 3 and all(r.levelno <= logging.INFO and "\n" not in r.getMessage() for r in bad)


async def test_out_of_file_descriptors_is_503_and_one_log_line(
    make_client: MakeClient, exports: list[Export], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import errno
    import logging

    from relay import resources
    from relay.storage.store import DiskStore

    monkeypatch.setattr(resources, "problems", resources.OnceAnInterval())

    def no_descriptors(self: DiskStore, key: str, filename: str) -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(DiskStore, "open_file", no_descriptors)
    client = await make_client()
    with caplog.at_level(logging.INFO):
        for dist in exports[0].dists:
            response = await client.get(f"/{exports[0].sha}/{dist.filename}")
            assert response.status == 503, await response.text()
            assert "retry" in await response.text()
    lines = [r for r in caplog.records if "Too many open files" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]


@pytest.mark.asyncio
async def test_readiness_reflects_the_store_while_liveness_stays_cheap(
    make_client: MakeClient, exports: list[Export], store_dir: Path
) -> None:
    client = await make_client()
    ready = await client.get("/-/ready")
    assert ready.status == 200 and await ready.json() == {"status": "ready", "store": "ok"}
    moved = store_dir.with_name("moved")
    store_dir.rename(moved)
    try:
        not_ready = await client.get("/-/ready")
        assert not_ready.status == 503
        body = await not_ready.json()
        assert body["status"] == "not ready" and "missing" in body["store"]
        assert (await client.get("/-/health")).status == 200
    finally:
        moved.rename(store_dir)
    assert (await client.get("/-/ready")).status == 200


@pytest.mark.asyncio
async def test_readiness_in_pull_mode_reflects_the_builder(make_client: MakeClient, tmp_path: Path) -> None:
    import shutil
    import subprocess

    from relay.building.materialize_test import fake_command, pull_client

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    client, _ = await pull_client(make_client, tmp_path / "store", repo, fake_command(tmp_path / "runs"))
    assert await (await client.get("/-/ready")).json() == {"status": "ready", "store": "ok", "builder": "ok"}
    shutil.rmtree(repo)
    response = await client.get("/-/ready")
    assert response.status == 503 and "repository" in (await response.json())["builder"]


@pytest.mark.asyncio
async def test_readiness_needs_no_credentials_and_tells_nothing_with_auth_on(
    make_client: MakeClient, exports: list[Export], tmp_path: Path
) -> None:
    from relay.auth.credentials import Authenticator, add_entry, new_token

    auth_file = tmp_path / "relay.auth"
    add_entry(auth_file, new_token("ci")[1])
    client = await make_client(auth=Authenticator(auth_file))
    response = await client.get("/-/ready")
    assert response.status == 200 and await response.json() == {"status": "ready"}

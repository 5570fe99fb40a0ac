"""The pages for people (`/`, `/<ref>/`), and the simple API left exactly as pip and uv know it."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from relay.index import render
from relay.auth.credentials import Authenticator, add_entry, password_entry
from relay.building.log import BuildLog
from relay.conftest import MakeClient, build_jobs
from relay.contract import Export
from relay.web.page_models import home_page_model
from relay.web.page_render import home_html
from relay_testing.exports import fake_sha, write_export

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
# What pip (23-25) and uv (0.4-0.9) send for index pages.
PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
UV = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


def line(page: str, id: str) -> str:
    """The text of a line to copy (as the copy button copies it)."""
    found = re.search(rf'<pre class="copy" id="{id}">(.*?)</pre>', page, re.S)
    assert found is not None, f"no line {id}"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


def shown_dists(page: str) -> list[str]:
    """The dists the table shows (rows not hidden), in order."""
    rows = re.findall(r'<tr data-search="[^"]*" data-dist="([^"]*)"( hidden)?>', page)
    return [html.unescape(name) for name, hidden in rows if not hidden]


async def _page(client: TestClient, path: str, status: int = 200, **headers: str) -> str:
    response = await client.get(path, headers={"Accept": BROWSER, **headers})
    text = await response.text()
    assert response.status == status, text
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    return text


@pytest.mark.asyncio
async def test_home_lists_refs_with_their_commits_and_exports(client: TestClient, exports: list[Export]) -> None:
    text = await _page(client, "/")
    for ref in ("main", "feature/x", "v1"):
        assert f'href="{ref}/">{ref}</a>' in text
    main_tip = exports[2]
    assert f'href="{main_tip.sha}/"><code>{main_tip.sha[:12]}</code>' in text
    assert main_tip.version in text and main_tip.commit_time in text
    for export in exports:
        assert export.sha[:12] in text
    assert "http://" not in text.split("<body>")[1].replace("http://www.w3.org", "")  # no external asset
    assert "<link" not in text and "src=" not in text


@pytest.mark.asyncio
async def test_ref_page_lists_dists_and_lines_to_copy(client: TestClient, exports: list[Export]) -> None:
    text = await _page(client, "/main/")
    tip = exports[2]
    origin = str(client.make_url("")).rstrip("/")
    # This relay has no --upstream: the public index is an extra index (relay/web/dist_pages_test.py has both).
    extra = "--extra-index-url https://pypi.org/simple"
    assert line(text, "line-install") == f"%pip install --index-url {origin}/main/simple/ {extra} monorepo.chain.a"
    assert line(text, "line-pinned") == (
        f"%pip install -c {origin}/{tip.sha}/constraints.txt --index-url {origin}/main/simple/ {extra} monorepo.chain.a"
    )
    for dist in tip.dists:
        assert f'<a href="-/{dist.project}/">{dist.name}</a>' in text
        assert f"<code>{dist.address}</code>" in text
    assert f"<code>monorepo.chain.b=={tip.version}</code>" in text
    assert 'type="search"' in text and 'name="q"' in text
    # Links lead back up from a ref with a slash in it.
    feature = await _page(client, "/feature/x/")
    assert '<a href="../../">all refs</a>' in feature
    assert f'href="../../{exports[3].sha}/constraints.txt"' in feature


@pytest.mark.asyncio
async def test_search_filters_on_the_server_too(client: TestClient, exports: list[Export]) -> None:
    text = await _page(client, "/main/?q=CHAIN.B")
    assert shown_dists(text) == ["monorepo.chain.b"]
    assert line(text, "line-install").endswith(" monorepo.chain.b")
    assert '<span id="shown">1</span> of 4' in text
    nothing = await _page(client, "/main/?q=nothing-like-it")
    assert "No dist matches nothing-like-it." in nothing


@pytest.mark.asyncio
async def test_unknown_ref_is_a_friendly_404_listing_the_refs(client: TestClient, exports: list[Export]) -> None:
    text = await _page(client, "/no-such-branch/", status=404)
    assert "No ref no-such-branch here" in text
    assert "unknown ref" in text
    assert 'href="../main/">main</a>' in text and 'href="../v1/">v1</a>' in text


@pytest.mark.asyncio
async def test_every_value_is_escaped(make_client: MakeClient, store_dir: Path) -> None:
    export = write_export(store_dir, fake_sha(9), 9, branches=("main",))
    manifest = store_dir / export.key / "manifest.json"
    data = json.loads(manifest.read_text())
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    data["branches"] = ["main", hostile]
    data["tags"] = [hostile + "tag"]
    data["commit_time"] = hostile
    data["namespace"] = hostile
    data["dists"][0]["address"] = hostile
    data["dists"][0]["requires_dist"] = [f'monorepo.chain.b; platform_machine == "{hostile}"'.replace('"><', "'><")]
    manifest.write_text(json.dumps(data))
    client = await make_client()
    pages = [
        await _page(client, "/"),
        await _page(client, "/main/?q=" + hostile.replace("#", "")),
        await _page(client, "/main/", Host='relay"><script>alert(3)</script>'),
        await _page(client, "/unknown/", status=404),
    ]
    for text in pages:
        assert "<script>alert" not in text and "<img" not in text
        assert len(re.findall(r"<script>", text)) <= 1  # only the page's own search script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    # A Host header that is no host name is not printed at all (relay.web.forwarded): the lines to copy
    # name the address the request came in on.
    assert "alert(3)" not in pages[2] and "--index-url http://127.0.0.1:" in pages[2]


@pytest.mark.asyncio
async def test_pages_ask_for_credentials_when_auth_is_on(
    make_client: MakeClient, exports: list[Export], tmp_path: Path
) -> None:
    auth_file = tmp_path / "auth"
    add_entry(auth_file, password_entry("alice", "secret"))
    client = await make_client(auth=Authenticator(auth_file))
    for path in ("/", "/main/", "/unknown/"):
        response = await client.get(path, headers={"Accept": BROWSER})
        assert response.status == 401
        assert "WWW-Authenticate" in response.headers
    credentials = aiohttp.BasicAuth("alice", "secret").encode()
    text = await _page(client, "/main/", Authorization=credentials)
    assert "--index-url http://USER:PASSWORD@" in line(text, "line-install")
    assert "secret" not in text and "alice" not in text


@pytest.mark.asyncio
async def test_simple_pages_are_unchanged_for_pip_uv_and_browsers(client: TestClient, exports: list[Export]) -> None:
    """The page for people lives beside the simple API: pip and uv get the same bytes as before."""
    main = [exports[2], exports[1], exports[0]]
    root_html = render.render(render.root_page(main), render.TEXT_HTML).body
    root_json = render.render(render.root_page(main), render.V1_JSON).body
    project = render.project_page("monorepo-chain-a", main, lambda key, f: render.file_url("../../../", key, f))
    assert project is not None
    project_json = render.render(project, render.V1_JSON).body
    project_html = render.render(project, render.TEXT_HTML).body
    for accept, root, page in ((PIP, root_json, project_json), (UV, root_json, project_json), (BROWSER, root_html, project_html)):
        response = await client.get("/main/simple/", headers={"Accept": accept})
        assert await response.read() == root, accept
        response = await client.get("/main/simple/monorepo-chain-a/", headers={"Accept": accept})
        assert await response.read() == page, accept
    response = await client.get("/main/simple/", headers={"Accept": render.V1_HTML})
    assert await response.read() == render.render(render.root_page(main), render.V1_HTML).body


def test_builds_show_their_age_and_a_failed_build_its_last_log_lines() -> None:
    builds = BuildLog(jobs=build_jobs(queued=["a" * 40], running=["b" * 40]))
    log = "\n".join(f"log line {n}" for n in range(100))
    builds.finish("c" * 40, f"building the export of {'c' * 40} failed (exit status 3)\n<tail>\n{log}", seconds=1.0)
    text = home_html(home_page_model("main", [], builds, [], time.time()))
    assert "<code>bbbbbbbbbbbb</code></td><td>building</td><td>0 s</td>" in text
    assert "<code>aaaaaaaaaaaa</code></td><td>queued</td>" in text
    assert "failed</b> <code>cccccccccccc</code>" in text and "exit status 3" in text
    assert "log line 99" in text and "log line 85" in text and "log line 84" not in text
    assert (builds.succeeded, builds.failed, len(builds.running), len(builds.queued)) == (0, 1, 1, 1)

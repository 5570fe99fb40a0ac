"""The dist pages, search, the copy lines' cases (no upstream, URL requirements, upgrades) over HTTP."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any
from pathlib import Path
from urllib.parse import urljoin

import pytest
from aiohttp.test_utils import TestClient

from relay.index import render
from relay.web.app import Settings
from relay.conftest import NS, MakeClient, Story, story_git
from relay.git import Git
from relay.web.install_lines import PUBLIC_INDEX
from relay.web.pages_test import BROWSER, PIP, UV, _page, line, shown_dists
from relay.index.refs import Refs
from relay_testing.exports import DistSpec, fake_sha, write_export

UPSTREAM = Settings(upstream="https://pypi.org/simple")
LINES = ("line-install", "line-pinned", "line-upgrade", "line-uv-install", "line-uv-upgrade")


async def _git_client(make_client: MakeClient, story: Story, settings: Settings = UPSTREAM) -> TestClient:
    refs = Refs(story.store, git=Git(story.repo))
    return await make_client(settings, refs=refs)


@pytest.mark.asyncio
async def test_a_dist_page_shows_what_a_project_page_does(make_client: MakeClient, story: Story) -> None:
    client = await _git_client(make_client, story)
    tip = story.exports[0]
    core = tip.dist("monorepo-textkit-core")
    assert core is not None
    text = await _page(client, "/main/-/monorepo-textkit-core/")
    origin = str(client.make_url("")).rstrip("/")
    # Install lines for this dist; the export has a URL requirement, so each carries constraints.
    assert line(text, "line-install") == (
        f"%pip install -c {origin}/main/constraints.txt --index-url {origin}/main/simple/ {NS}.core"
    )
    assert line(text, "line-pinned") == f"%pip install -c {origin}/{tip.sha}/constraints.txt --index-url {origin}/main/simple/ {NS}.core"
    assert line(text, "line-upgrade").startswith("%pip install --upgrade --upgrade-strategy only-if-needed -c ")
    assert 'class="copy-button" data-copy="line-install" hidden>Copy</button>' in text
    # Requires-Python, the Pants address, the modules (import textkit.core.stats leads here).
    assert "<code>&gt;=3.7</code>" in text and f"<code>{core.address}</code>" in text
    assert "<code>import textkit.core.stats</code>" in text and "textkit/core/words.txt" in text
    # Requirements (first-party linked) and the dists that depend on it.
    assert "<code>attrs&gt;=23.1</code>" in text
    assert '<a href="../../-/monorepo-envs-nlp/">monorepo.envs.nlp</a>' in text
    assert '<a href="../../-/monorepo-textkit-cli/">monorepo.textkit.cli</a>' in text
    # Its versions along main: the commits where it changed, with their dates and messages.
    assert "core: attrs 23 for slots" in text and "textkit: first cut" in text
    assert "cli: --verbose" not in text  # commit 2 did not change core
    assert 'title="2026-01-02T03:04:05+00:00">2026-01-02 03:04</td>' in text
    assert f'<a href="../../../{story.shas[0]}/"><code>{story.shas[0][:12]}</code></a>' in text
    # Files with sizes and hashes, linked where the simple API links them.
    assert core.sha256 in text and core.metadata_sha256 in text
    for href in re.findall(r'<a href="([^"]+\.whl(?:\.metadata)?)">', text):
        response = await client.get(urljoin("/main/-/monorepo-textkit-core/", href))
        assert response.status == 200, href
    cli = await _page(client, "/main/-/monorepo-textkit-cli/")
    assert '<a href="../../-/monorepo-textkit-core/"><code>monorepo.textkit.core==' in cli
    assert "cli: --verbose &lt;b&gt;bold&lt;/b&gt;" in cli  # its own change, escaped
    assert 'title="uv needs it as a constraint">URL</span>' in cli


@pytest.mark.asyncio
async def test_an_environment_dist_has_its_badge_and_lists_its_set(make_client: MakeClient, story: Story) -> None:
    client = await _git_client(make_client, story)
    text = await _page(client, "/main/-/monorepo-envs-nlp/")
    assert '<span class="kind env"' in text.split("</h1>")[0]
    assert "installing it installs the set below" in text
    ref = await _page(client, "/main/")
    row = next(r for r in ref.split("<tr ") if 'data-dist="monorepo.envs.nlp"' in r)
    assert 'class="kind env">environment</span>' in row


@pytest.mark.asyncio
async def test_dist_pages_at_a_commit_and_a_tag_read_the_history_from_git(make_client: MakeClient, story: Story) -> None:
    story_git(story.repo, "tag", "v1", story.shas[1])
    client = await _git_client(make_client, story)
    text = await _page(client, f"/{story.shas[1][:12]}/-/monorepo-textkit-cli/")
    assert "cli: --verbose" in text and "textkit: first cut" in text and "core: attrs 23" not in text
    tagged = await _page(client, "/v1/-/monorepo-textkit-core/")
    assert "textkit: first cut" in tagged and '<nav><a href="../../../">all refs</a>' in tagged


@pytest.mark.asyncio
async def test_without_git_versions_come_from_the_manifests(make_client: MakeClient, story: Story) -> None:
    client = await make_client(UPSTREAM)
    text = await _page(client, "/main/-/monorepo-textkit-core/")
    assert "(no repository)" in text and story.exports[0].commit_time in text
    older = await _page(client, f"/{story.shas[1]}/-/monorepo-textkit-core/")
    assert older.count("<tr class=\"current\">") == 1 and story.shas[0][:12] in older


@pytest.mark.asyncio
async def test_dist_page_names_redirect_and_unknown_dists_are_404(make_client: MakeClient, story: Story) -> None:
    client = await make_client(UPSTREAM)
    response = await client.get("/main/-/Monorepo.TextKit.Core/", allow_redirects=False)
    assert response.status == 301 and response.headers["Location"] == "../monorepo-textkit-core/"
    response = await client.get("/main/-/monorepo-textkit-core", allow_redirects=False)
    assert response.status == 301
    text = await _page(client, "/main/-/no-such-dist/", status=404)
    assert re.search(r"has no dist &#(39|x27);no-such-dist&#(39|x27);", text)
    response = await client.get("/main/-/%3Cscript%3E/", headers={"Accept": BROWSER})
    assert response.status == 400
    await _page(client, "/no-such-ref/-/monorepo-textkit-core/", status=404)


@pytest.mark.asyncio
async def test_search_finds_modules_and_the_copy_lines_follow_it(make_client: MakeClient, story: Story) -> None:
    client = await make_client(UPSTREAM)
    for query in ("stats", "import+textkit.core.stats", "textkit%2Fcore%2Fstats.py"):
        text = await _page(client, f"/main/?q={query}")
        assert shown_dists(text) == [f"{NS}.core"], query
        assert line(text, "line-install").endswith(f" {NS}.core")
        assert "provides <code>textkit.core.stats</code>" in text
    # Every dist is in the page, the ones not found hidden: the script can show them as one types.
    text = await _page(client, "/main/?q=stats")
    assert len(re.findall(r"<tr data-search=", text)) == 4
    assert 'data-search="monorepo.textkit.core monorepo.textkit.core.core monorepo.textkit.core textkit.core.stats"' in text
    # The script updates the lines' names and the count (checked in Chromium by scripts/screenshot).
    assert 'querySelectorAll(".copyline .names")' in text


@pytest.mark.asyncio
async def test_without_upstream_the_lines_add_the_public_index_and_say_why(make_client: MakeClient, story: Story) -> None:
    client = await make_client(Settings())
    for path in ("/main/", "/main/-/monorepo-tools/"):
        text = await _page(client, path)
        assert f"--extra-index-url {PUBLIC_INDEX} " in line(text, "line-install")
        assert "This relay has no <code>--upstream</code>" in text
        assert line(text, "line-uv-install").startswith(f"uv pip install -c ") and f"--index-url {PUBLIC_INDEX} --extra-index-url " in line(text, "line-uv-install")
    client = await make_client(UPSTREAM)
    text = await _page(client, "/main/")
    assert "--extra-index-url" not in line(text, "line-install") and "This relay has no" not in text


@pytest.mark.asyncio
async def test_url_requirements_put_constraints_on_every_line_and_the_page_says_why(
    make_client: MakeClient, story: Story
) -> None:
    client = await make_client(UPSTREAM)
    for path in ("/main/", "/main/-/monorepo-tools/", f"/{story.shas[2]}/"):
        text = await _page(client, path)
        for id in LINES:
            assert "/constraints.txt " in line(text, id), (path, id)
        assert "URL dependencies must be expressed as direct requirements or constraints" in text
        assert "<code>click @ git+https://github.com/pallets/click@8.1.7</code>" in text
    # The simple API's 404 for that name (no upstream) says how to install it.
    client = await make_client(Settings())
    response = await client.get("/main/simple/click/")
    body = await response.text()
    assert response.status == 404
    assert "require it by URL (click @ git+https://github.com/pallets/click@8.1.7)" in body
    assert f"pip install -c http://{response.url.host}:{response.url.port}/main/constraints.txt" in body
    # A name that is no URL requirement keeps the plain 404.
    response = await client.get("/main/simple/attrs/")
    assert (await response.text()).strip() == "'attrs' is not a project of this relay and no --upstream is configured"


@pytest.mark.asyncio
async def test_an_export_without_url_requirements_keeps_plain_lines(make_client: MakeClient, exports: list) -> None:
    client = await make_client(UPSTREAM)
    text = await _page(client, "/main/")
    assert "-c " not in line(text, "line-install") and "URL dependencies" not in text
    assert "changes no third-party requirement line" in text


@pytest.mark.asyncio
async def test_hostile_names_messages_and_paths_are_escaped(make_client: MakeClient, tmp_path: Path, store_dir: Path) -> None:
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "f").write_text("x")
    story_git(repo, "add", "f")
    story_git(repo, "commit", "-q", "-m", f"msg {hostile}")
    sha = story_git(repo, "rev-parse", "HEAD")
    spec = DistSpec(
        "monorepo.evil",
        third_party=('attrs; platform_machine == "\'><script>alert(5)</script>"',),
        files=((f"evil/{hostile.replace('/', '_')}.py", "x = 1\n"), (f"evil/{hostile.replace('/', '_')}.txt", "")),
    )
    export = write_export(store_dir, sha, 1, [spec], origins={})
    manifest = store_dir / export.key / "manifest.json"
    data = json.loads(manifest.read_text())
    data["dists"][0]["address"] = hostile
    data["commit_time"] = hostile
    data["namespace"] = hostile
    manifest.write_text(json.dumps(data))
    from relay.storage.store import DiskStore

    store = DiskStore(store_dir, scan_interval=0.0)
    client = await make_client(Settings(), refs=Refs(store, git=Git(repo)))
    pages = [
        await _page(client, "/main/-/monorepo-evil/"),
        await _page(client, "/main/?q=" + hostile.replace("#", "")),
        await _page(client, "/main/-/monorepo-evil/", Host='relay"><script>alert(3)</script>'),
        await _page(client, "/main/-/nope/", status=404),
    ]
    for text in pages:
        assert "<script>alert" not in text and "<img" not in text, text
        assert text.count("<script>") <= 1  # the page's own
    assert "msg &#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    # A Host header that is no host name is not printed (relay.web.forwarded): the lines name the socket's address.
    assert "alert(3)" not in pages[2] and "--index-url http://127.0.0.1:" in line(pages[2], "line-install")


@pytest.mark.asyncio
async def test_the_simple_api_is_unchanged_beside_the_dist_pages(make_client: MakeClient, story: Story) -> None:
    client = await _git_client(make_client, story)
    await _page(client, "/main/-/monorepo-textkit-core/")  # the pages read wheels and git first
    main = list(story.exports)
    project = render.project_page("monorepo-textkit-core", main, lambda key, f: render.file_url("../../../", key, f))
    assert project is not None
    for accept, media_type in ((PIP, render.V1_JSON), (UV, render.V1_JSON), (BROWSER, render.TEXT_HTML)):
        response = await client.get("/main/simple/monorepo-textkit-core/", headers={"Accept": accept})
        assert await response.read() == render.render(project, media_type).body, accept
        response = await client.get("/main/simple/", headers={"Accept": accept})
        assert await response.read() == render.render(render.root_page(main), media_type).body, accept


@pytest.mark.asyncio
async def test_a_ref_with_a_slash_links_its_dist_pages(make_client: MakeClient, store_dir: Path) -> None:
    write_export(store_dir, fake_sha(7), 1, branches=("feature/x",))
    client = await make_client(UPSTREAM)
    text = await _page(client, "/feature/x/")
    assert '<a href="-/monorepo-chain-a/">monorepo.chain.a</a>' in text
    dist = await _page(client, "/feature/x/-/monorepo-chain-a/")
    assert '<nav><a href="../../../../">all refs</a> / <a href="../../">feature/x</a></nav>' in dist
    href = re.search(r'<a href="([^"]+\.whl)">', dist)
    assert href is not None
    response = await client.get(urljoin("/feature/x/-/monorepo-chain-a/", href.group(1)))
    assert response.status == 200


def test_a_relay_without_upstream_warns_at_start_up(store_dir: Path, tmp_path: Path) -> None:
    from tests.relay_process import RelayProcess

    write_export(store_dir, fake_sha(1), 1)
    for args, warned in (((), True), (("--upstream", "https://pypi.org/simple"), False)):
        log = tmp_path / f"relay-{warned}.log"
        RelayProcess(store_dir, *args, log=log).stop()
        text = log.read_text()
        assert ("WARNING relay no --upstream: " in text) == warned, text
        if warned:
            assert f"the pages show the line that works (with --extra-index-url {PUBLIC_INDEX})" in text


@pytest.mark.asyncio
async def test_rendered_pages_are_kept_only_while_what_they_show_holds(
    make_client: MakeClient, story: Story, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from relay.web import page_render
    from relay.web.app import CONTENTS, REFS

    client = await _git_client(make_client, story)
    tip = story.exports[0]
    core = tip.dist("monorepo-textkit-core")
    assert core is not None
    wheel = story.store.root / tip.key / core.filename
    good = wheel.read_bytes()
    wheel.write_bytes(b"x" * len(good))  # unreadable now: the page says so and is not kept
    text = await _page(client, "/main/-/monorepo-textkit-core/")
    assert "could not be read just now" in text
    wheel.write_bytes(good)
    os.utime(wheel, (1, 1))
    text = await _page(client, "/main/-/monorepo-textkit-core/")
    assert "<code>import textkit.core.stats</code>" in text
    renders: list[str] = []
    for name in ("ref_html", "dist_html"):
        original = getattr(page_render, name)

        def counted(*a: Any, _f: Any = original, _n: str = name, **k: Any) -> Any:
            renders.append(_n)
            return _f(*a, **k)

        monkeypatch.setattr(page_render, name, counted)
    for path in ("/main/-/monorepo-textkit-core/", "/main/", "/main/", "/main/-/monorepo-textkit-core/", "/main/?q=x"):
        await _page(client, path)
    assert renders == ["ref_html", "ref_html"]  # the dist page was kept; the ref page once per query
    assert client.app[CONTENTS].reads == 4  # every wheel read once
    # A new export of main: the pages show it at once.
    (story.repo / "log").write_text("4")
    story_git(story.repo, "commit", "-q", "-am", "core: fresh")
    sha = story_git(story.repo, "rev-parse", "HEAD")
    write_export(story.store.root, sha, 4, [DistSpec(f"{NS}.core", files=(("textkit/core/fresh.py", ""),))], origins={})
    await client.app[REFS].refresh()  # as the refresh loop does
    text = await _page(client, "/main/-/monorepo-textkit-core/")
    assert "<code>import textkit.core.fresh</code>" in text

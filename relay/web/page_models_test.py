"""The pages' models as plain data: search, install lines, a dist's page (history, links, modules, files)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from relay.git import Git
from relay.index.history import Commits, export_changes, version_rows
from relay.web.install_lines import PUBLIC_INDEX, Where, install_lines, relay_url
from relay.web.page_models import dist_page_model, ref_page_model
from relay.index.refs import View
from relay.index.search import normalize_query, search
from relay.storage.store import DiskStore
from relay.conftest import NS, Story
from relay.index.wheel_contents import Contents, module_of, read_contents

def branch(story: Story) -> View:
    return View(ref="main", kind="branch", sha=story.exports[0].sha, exports=story.exports)


WHERE = Where(base="https://relay.example.com/pypi/", auth=False, credentials=False, upstream=True)


def test_module_names_come_from_wheel_paths() -> None:
    assert module_of("textkit/core/stats.py").name == "textkit.core.stats"  # type: ignore[union-attr]
    assert module_of("textkit/core/__init__.py").name == "textkit.core"  # type: ignore[union-attr]
    assert module_of("fast.cpython-311-x86_64-linux-gnu.so").name == "fast"  # type: ignore[union-attr]
    assert module_of("textkit/core/words.txt") is None
    migrations = module_of("bin/migrations/v3.5/run.py")
    assert migrations is not None and migrations.name == "bin.migrations.v3.5.run" and not migrations.importable


def test_wheel_contents_list_modules_data_and_the_environment_flag(story: Story) -> None:
    tip = story.exports[0]
    directory = story.store.root / tip.key
    core = read_contents(io.BytesIO((directory / tip.dist("monorepo-textkit-core").filename).read_bytes()))  # type: ignore[union-attr]
    assert [m.name for m in core.modules] == ["monorepo_textkit_core", "textkit.core.stats"]
    assert core.data_files == ("textkit/core/words.txt",) and not core.environment
    env = read_contents(io.BytesIO((directory / tip.dist("monorepo-envs-nlp").filename).read_bytes()))  # type: ignore[union-attr]
    assert env.environment and env.modules == ()


def test_a_damaged_wheel_reads_as_unknown_and_is_tried_again(story: Story, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    tip = story.exports[0]
    dist = tip.dist("monorepo-tools")
    assert dist is not None
    path = story.store.root / tip.key / dist.filename
    good = path.read_bytes()
    path.write_bytes(b"x" * len(good))  # same size, other bytes: the store refuses it
    contents = Contents(story.store)

    async def read() -> object:
        return await contents.of(tip, dist)

    assert asyncio.run(read()).modules == ()  # type: ignore[attr-defined]
    assert "reading the contents of" in caplog.text and contents.reads == 0
    path.write_bytes(good)
    os.utime(path, (1, 1))  # another stamp: the store checks the digest again
    assert [m.name for m in asyncio.run(read()).modules] == ["monorepo_tools"]  # type: ignore[attr-defined]


def test_search_finds_names_addresses_and_modules(story: Story) -> None:
    import asyncio

    tip = story.exports[0]
    contents = asyncio.run(Contents(story.store).of_all(tip, tip.dists))
    names = lambda q: [h.dist.name for h in search(tip.dists, q, contents)]  # noqa: E731
    assert names("stats") == [f"{NS}.core"]
    hit = search(tip.dists, "import textkit.core.stats", contents)[0]
    assert (hit.dist.name, hit.field, hit.module) == (f"{NS}.core", "module", "textkit.core.stats")
    assert names("from textkit.core import stats") == [f"{NS}.core"]
    assert names("textkit/core/stats.py") == [f"{NS}.core"]
    assert names("TEXTKIT-CLI") == [f"{NS}.cli"]
    assert names("monorepo/tools:tools") == ["monorepo.tools"]  # an address
    # Exact names first, then names, addresses, modules.
    assert names("monorepo.textkit.core") == [f"{NS}.core"]
    assert names("textkit")[:2] == [f"{NS}.cli", f"{NS}.core"]
    assert names("") == [d.name for d in tip.dists]
    assert names("nothing-like-it") == []
    assert normalize_query("  from a.b import c ") == "a.b.c"


def test_install_lines_follow_the_ref_and_pin_the_commit() -> None:
    sha = "a" * 40
    lines = install_lines(WHERE, "feature/x", sha, ("monorepo.a",), url_requirements=False)
    index = "https://relay.example.com/pypi/feature/x/simple/"
    assert lines.install.text == f"%pip install --index-url {index} monorepo.a"
    assert lines.pinned.text == f"%pip install -c https://relay.example.com/pypi/{sha}/constraints.txt --index-url {index} monorepo.a"
    assert lines.upgrade.text == (
        f"%pip install --upgrade --upgrade-strategy only-if-needed -c https://relay.example.com/pypi/{sha}/constraints.txt "
        f"--index-url {index} monorepo.a"
    )
    assert lines.uv_upgrade.text == f"uv pip install -c https://relay.example.com/pypi/{sha}/constraints.txt --index-url {index} monorepo.a"
    assert "--upgrade" not in lines.uv_upgrade.text  # uv's --upgrade lets every package move


def test_with_url_requirements_every_line_carries_a_constraints_file() -> None:
    lines = install_lines(WHERE, "main", "b" * 40, ("monorepo.a",), url_requirements=True)
    for line in (lines.install, lines.pinned, lines.upgrade, lines.uv_install, lines.uv_upgrade):
        assert " -c https://relay.example.com/pypi/" in line.text, line
    # The line that follows the branch takes the branch's constraints, so it still follows it.
    assert "-c https://relay.example.com/pypi/main/constraints.txt" in lines.install.text


def test_without_upstream_the_public_index_is_an_extra_index() -> None:
    where = Where(base="http://127.0.0.1:8080/", auth=True, credentials=True, upstream=False)
    lines = install_lines(where, "main", "c" * 40, ("monorepo.a",), url_requirements=False)
    assert lines.install.text == (
        f"%pip install --index-url http://USER:PASSWORD@127.0.0.1:8080/main/simple/ --extra-index-url {PUBLIC_INDEX} monorepo.a"
    )
    # uv asks its extra indexes first: the relay is that one, so monorepo names are asked of it first.
    assert lines.uv_install.text == (
        f"uv pip install --index-url {PUBLIC_INDEX} --extra-index-url http://USER:PASSWORD@127.0.0.1:8080/main/simple/ monorepo.a"
    )
    assert relay_url(where, "/x/") == "http://USER:PASSWORD@127.0.0.1:8080/x/"


def test_ref_page_model_lists_hits_lines_for_the_first_and_why_constraints(story: Story) -> None:
    import asyncio

    view = branch(story)
    contents = asyncio.run(Contents(story.store).of_all(view.tip, view.tip.dists))
    page = ref_page_model(view, WHERE, "stats", contents)
    assert [r.dist.name for r in page.rows if not r.hidden] == [f"{NS}.core"] and page.shown == 1
    assert len(page.rows) == 4  # the others are listed hidden, for the script
    assert page.rows[0].link == "-/monorepo-textkit-core/" and page.rows[0].module == "textkit.core.stats"
    assert page.lines.install.names == (f"{NS}.core",)
    assert page.url_requirements == ("click @ git+https://github.com/pallets/click@8.1.7",)
    assert "-c https://relay.example.com/pypi/main/constraints.txt" in page.lines.install.text
    env = next(r for r in ref_page_model(view, WHERE, "", contents).rows if r.dist.name == "monorepo.envs.nlp")
    assert env.environment
    # An upgrade from the previous export moves attrs' line: the page says so.
    assert page.upgrade_from == story.exports[1].key
    assert [(c.project, c.before, c.after) for c in page.changes] == [("attrs", ("attrs>=22.2",), ("attrs>=23.1",))]


def test_dist_page_model(story: Story) -> None:
    import asyncio

    view = branch(story)
    tip = view.tip
    core = tip.dist("monorepo-textkit-core")
    assert core is not None

    async def build() -> object:
        contents = Contents(story.store)
        commits = await Commits(Git(story.repo)).read(d.origin or "" for x in view.exports for d in x.dists)
        return dist_page_model(
            view,
            core,
            WHERE,
            base="../../../",
            contents=await contents.of(tip, core),
            dependents_contents=await contents.of_all(tip, tip.dists),
            history=view.exports,
            commits=commits,
        )

    page = asyncio.run(build())
    assert page.dist is core  # type: ignore[attr-defined]
    assert [m.name for m in page.contents.modules] == ["monorepo_textkit_core", "textkit.core.stats"]  # type: ignore[attr-defined]
    assert [(r.text, r.link) for r in page.requirements] == [("attrs>=23.1", None)]  # type: ignore[attr-defined]
    dependents = [(d.name, d.link, d.environment) for d in page.dependents]  # type: ignore[attr-defined]
    assert dependents == [
        ("monorepo.envs.nlp", "../../-/monorepo-envs-nlp/", True),
        (f"{NS}.cli", "../../-/monorepo-textkit-cli/", False),
    ]
    # Two versions along main: commit 3 (attrs moved) and commit 1 (exports 1 and 2 share it).
    history = [(r.version, r.commit.sha, r.commit.subject, r.exports, r.current) for r in page.history]  # type: ignore[attr-defined]
    assert history == [
        (core.version, story.shas[2], "core: attrs 23 for slots", 1, True),
        (f"0.1+g{story.shas[0][:12]}", story.shas[0], "textkit: first cut", 2, False),
    ]
    assert page.history[0].commit.date == "2026-01-02T03:04:05+00:00"  # type: ignore[attr-defined]
    assert [(c.before, c.after) for c in page.history[0].changes] == [(("attrs>=22.2",), ("attrs>=23.1",))]  # type: ignore[attr-defined]
    # Files under the oldest export of the branch that lists them (as the simple API links them).
    wheel, metadata = page.files  # type: ignore[attr-defined]
    assert wheel.url == f"../../../{tip.key}/{core.filename.replace('+', '%2B')}"
    assert (wheel.size, wheel.sha256, metadata.sha256) == (core.size, core.sha256, core.metadata_sha256)
    cli = tip.dist("monorepo-textkit-cli")
    assert cli is not None
    cli_rows = dist_page_model(
        view, cli, WHERE, base="../../../", contents=None, dependents_contents={}, history=view.exports, commits={}
    )
    assert [(r.link, r.url) for r in cli_rows.requirements] == [("../../-/monorepo-textkit-core/", False), (None, True)]
    # Without git, a version's commit carries the export's date and no message.
    assert cli_rows.history[0].commit.subject is None and cli_rows.history[0].commit.date == tip.commit_time


def test_unchanged_versions_share_a_row_and_export_changes_name_lockfile_pins(story: Story) -> None:
    rows = version_rows("monorepo-tools", story.exports, {})
    assert [(r.exports, r.first_export) for r in rows] == [(3, story.exports[-1].key)]
    changes = export_changes(story.exports[1], story.exports[0])
    assert [(c.project, c.after) for c in changes] == [("attrs", ("attrs>=23.1",))]


def test_git_log_for_commits_reads_once_and_skips_unknown_shas(story: Story) -> None:
    import asyncio

    commits = Commits(Git(story.repo))

    async def twice() -> tuple[dict, dict, int]:
        first = await commits.read([story.shas[0], "f" * 40])
        second = await commits.read([story.shas[0]])
        return first, second, commits.git.processes  # type: ignore[union-attr]

    first, second, processes = asyncio.run(twice())
    assert set(first) == {story.shas[0]} and second == first and processes == 1


def test_a_zip_bomb_member_is_not_read(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr("x-1.dist-info/export_dists.json", b" " * (10 * 1024 * 1024))
        wheel.writestr("x/__init__.py", b"")
    contents = read_contents(io.BytesIO(buffer.getvalue()))
    assert not contents.environment and [m.name for m in contents.modules] == ["x"]

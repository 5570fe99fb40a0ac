"""RuleRunner tests for one export: the first-party closure, collisions, unexportable deps, pins."""
from __future__ import annotations

import logging
import os

import pytest

from export_dists.conftest import Repo, make_rule_runner
from export_dists.export import Export
from export_dists.subsystem import UnexportableDependencies
from pants.base.build_root import BuildRoot
from pants.base.specs import RawSpecs, RecursiveGlobSpec
from pants.engine.addresses import Address, Addresses
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.target import Dependencies, DependenciesRequest, Targets


def requires(export: Export) -> dict[str, tuple[str, ...]]:
    return {dist.name: dist.requires_dist for dist in export.dists}


CHAIN = {
    "3rdparty/BUILD": 'python_requirement(name="requests", requirements=["requests[socks]>=2.28; python_version<\'3.12\'"])',
    "src/python/app/BUILD": "python_sources()",
    "src/python/app/main.py": "import lib.mid.m\n",
    "libs/lib/mid/BUILD": "python_sources()",
    "libs/lib/mid/m.py": "import lib.low.l\nimport requests\n",
    "libs/lib/low/BUILD": "python_sources()",
    "libs/lib/low/l.py": "",
    "libs/unrelated/BUILD": "python_sources()",
    "libs/unrelated/u.py": "",
}


def test_requesting_one_target_exports_its_first_party_closure(repo: Repo) -> None:
    repo.commit(CHAIN)
    export = repo.export(Address("src/python/app"))
    version = export.info.version
    assert requires(export) == {
        "monorepo.libs.lib.low": (),
        "monorepo.libs.lib.mid": (
            f"monorepo.libs.lib.low=={version}",
            'requests[socks]>=2.28; python_version < "3.12"',
        ),
        "monorepo.src.python.app": (f"monorepo.libs.lib.mid=={version}",),
    }
    assert export.requested == (Address("src/python/app"),)
    # Every dist of one export has the one version.
    assert {d.version for d in export.dists} == {version}
    assert [p.plan.identity.name for p in export.planned] == [d.name for d in export.dists]


def test_collision_of_normalized_names_names_both_addresses(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/a/b_c/BUILD": "python_sources()",
            "src/python/a/b_c/m.py": "",
            "src/python/a/b/BUILD": 'python_sources(name="c", sources=["c.py"])',
            "src/python/a/b/c.py": "",
        }
    )
    with pytest.raises(ExecutionError) as e:
        repo.export(Address("src/python/a/b_c"), Address("src/python/a/b", target_name="c"))
    message = str(e.value)
    assert "DistNameCollision" in message
    assert "src/python/a/b:c" in message and "src/python/a/b_c:b_c" in message
    assert "'monorepo-src-python-a-b-c'" in message
    assert "export_dist_name" in message


def test_collision_through_export_dist_name_in_the_closure(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/a/BUILD": 'python_sources(export_dist_name="Shared.Name")',
            "src/python/a/m.py": "import b.m\n",
            "src/python/b/BUILD": 'python_sources(export_dist_name="shared_name")',
            "src/python/b/m.py": "",
        }
    )
    with pytest.raises(ExecutionError) as e:
        repo.export(Address("src/python/a"))  # b is only in the closure
    message = str(e.value)
    assert "src/python/a:a" in message and "src/python/b:b" in message and "'shared-name'" in message


FILES_DEP = {
    "src/python/a/BUILD": 'python_sources(dependencies=[":data", "src/python/tool:bin"])\nfiles(name="data", sources=["data.txt"])',
    "src/python/a/m.py": "",
    "src/python/a/data.txt": "x\n",
    "src/python/tool/BUILD": 'python_sources()\npex_binary(name="bin", entry_point="t.py")',
    "src/python/tool/t.py": "",
}


def test_dependency_on_files_warns_by_default(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(FILES_DEP)
    with caplog.at_level(logging.WARNING):
        export = repo.export(Address("src/python/a"))
    assert requires(export) == {"monorepo.src.python.a": ()}
    warnings = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "src/python/a:data" in warnings and "`files`" in warnings
    assert "src/python/tool:bin" in warnings and "`pex_binary`" in warnings
    assert "resources" in warnings  # the fix: use a resources target (or exclude with `!`)
    assert "left out of Requires-Dist" in warnings
    plan = repo.plan(Address("src/python/a"))
    assert {d.identity.address for d in plan.not_exportable} == {
        Address("src/python/a", target_name="data"),
        Address("src/python/tool", target_name="bin"),
    }


def test_dependency_on_files_is_an_error_when_asked(repo: Repo) -> None:
    repo.commit(FILES_DEP)
    with pytest.raises(ExecutionError) as e:
        repo.export(Address("src/python/a"), unexportable=UnexportableDependencies.ERROR)
    message = str(e.value)
    assert "UnexportableDependencyError" in message
    assert "src/python/a:a (dist monorepo.src.python.a) depends on src/python/a:data" in message
    assert "src/python/tool:bin" in message
    assert 'unexportable_dependencies = "warn"' in message


def test_dependency_on_a_skipped_target(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(
        {
            "src/python/a/BUILD": "python_sources()",
            "src/python/a/m.py": "import b.m\n",
            "src/python/b/BUILD": "python_sources(skip_export_dist=True)",
            "src/python/b/m.py": "",
        }
    )
    with caplog.at_level(logging.WARNING):
        export = repo.export(Address("src/python/a"))
    assert requires(export) == {"monorepo.src.python.a": ()}
    assert any("src/python/b:b" in r.getMessage() and "skip_export_dist" in r.getMessage() for r in caplog.records)
    with pytest.raises(ExecutionError, match="src/python/a:a .* depends on src/python/b:b"):
        repo.export(Address("src/python/a"), unexportable=UnexportableDependencies.ERROR)


def test_explicit_dependency_on_a_python_requirements_generator(repo: Repo) -> None:
    repo.commit(
        {
            "3rdparty/BUILD": "python_requirements(name='reqs')",
            "3rdparty/requirements.txt": "PyYAML>=6\nattrs\n",
            "src/python/a/BUILD": 'python_sources(dependencies=["3rdparty:reqs"])',
            "src/python/a/m.py": "",
        }
    )
    export = repo.export(Address("src/python/a"))
    assert requires(export) == {"monorepo.src.python.a": ("attrs", "PyYAML>=6")}


LOCK = """\
// This lockfile was autogenerated by Pants. To regenerate, run:
//
//    pants generate-lockfiles --resolve=python-default
{
  "locked_resolves": [
    {
      "locked_requirements": [
        {"project_name": "requests", "version": "2.31.0", "requires_dists": []},
        {"project_name": "pyyaml", "version": "6.0.1", "requires_dists": []}
      ]
    }
  ]
}
"""


def test_third_party_pinned_to_the_lockfile(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(
        {
            "lock.txt": LOCK,
            "3rdparty/BUILD": (
                'python_requirement(name="requests", requirements=["requests[socks]>=2.28; python_version<\'3.12\'"])\n'
                'python_requirement(name="yaml", requirements=["PyYAML>=6"], modules=["yaml"])\n'
                'python_requirement(name="attrs", requirements=["attrs"])'
            ),
            "src/python/a/BUILD": "python_sources()",
            "src/python/a/m.py": "import requests\nimport yaml\nimport attr\n",
        }
    )
    repo.set_options("--python-enable-resolves", "--python-resolves={'python-default': 'lock.txt'}")
    as_written = repo.export(Address("src/python/a"))
    assert requires(as_written)["monorepo.src.python.a"] == (
        "attrs",
        "PyYAML>=6",
        'requests[socks]>=2.28; python_version < "3.12"',
    )
    with caplog.at_level(logging.WARNING):
        pinned = repo.export(Address("src/python/a"), pin_from_lockfiles=True)
    assert requires(pinned)["monorepo.src.python.a"] == (
        "attrs",  # not in the lockfile: as written, with a warning
        "PyYAML==6.0.1",
        'requests[socks]==2.31.0; python_version < "3.12"',
    )
    assert any("'attrs'" in r.getMessage() and "generate-lockfiles" in r.getMessage() for r in caplog.records)


def test_lockfile_pins_without_a_lockfile(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(
        {
            "3rdparty/BUILD": 'python_requirement(name="attrs", requirements=["attrs>=23"])',
            "src/python/a/BUILD": "python_sources()",
            "src/python/a/m.py": "import attr\n",
        }
    )
    repo.set_options("--python-enable-resolves", "--python-resolves={'python-default': 'missing.lock'}")
    with caplog.at_level(logging.WARNING):
        export = repo.export(Address("src/python/a"), pin_from_lockfiles=True)
    assert requires(export)["monorepo.src.python.a"] == ("attrs>=23",)
    assert any("has no lockfile" in r.getMessage() for r in caplog.records)


def test_lockfile_pins_with_resolves_disabled_warn(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(
        {
            "3rdparty/BUILD": 'python_requirement(name="attrs", requirements=["attrs>=23"])',
            "src/python/a/BUILD": "python_sources()",
            "src/python/a/m.py": "import attr\n",
        }
    )
    with caplog.at_level(logging.WARNING):
        export = repo.export(Address("src/python/a"), pin_from_lockfiles=True)
    assert requires(export)["monorepo.src.python.a"] == ("attrs>=23",)
    warnings = [" ".join(r.getMessage().split()) for r in caplog.records if r.levelno == logging.WARNING]
    assert any("[python].enable_resolves is false" in w and "exported as written" in w for w in warnings), warnings


REPRODUCIBLE = {
    "src/python/a/BUILD": 'python_sources(dependencies=[":data"])\nresources(name="data", sources=["*.json"])',
    "src/python/a/m.py": "import b.m\n",
    "src/python/a/table.json": "{}\n",
    "libs/b/BUILD": "python_sources()",
    "libs/b/m.py": "VALUE = 1\n",
}


def test_the_same_commit_exports_byte_identical_wheels(repo: Repo) -> None:
    sha = repo.commit(REPRODUCIBLE)
    first = repo.export(Address("src/python/a"))
    # The same commit in another build root (another checkout, another machine), another engine.
    other = make_rule_runner()
    try:
        other_repo = Repo(other)
        assert other_repo.commit(REPRODUCIBLE) == sha
        second = other_repo.export(Address("src/python/a"))
    finally:
        BuildRoot().path = repo.root  # the build root is a process-wide singleton
    assert other.build_root != repo.root
    assert [(d.wheel.filename, d.wheel.content) for d in first.dists] == [
        (d.wheel.filename, d.wheel.content) for d in second.dists
    ]
    for dist in first.dists:
        assert os.path.basename(repo.root).encode() not in dist.wheel.content


def test_the_same_module_under_two_source_roots_warns(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(
        {
            "src/python/shared/BUILD": "python_sources()",
            "src/python/shared/util.py": "A = 1\n",
            "libs/shared/BUILD": "python_sources()",
            "libs/shared/util.py": "A = 2\n",
        }
    )
    with caplog.at_level(logging.WARNING):
        export = repo.export(Address("src/python/shared"), Address("libs/shared"))
    assert {d.name for d in export.dists} == {"monorepo.src.python.shared", "monorepo.libs.shared"}
    warnings = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "shared/util.py would be installed by 2 dists" in warnings
    assert "src/python/shared" in warnings and "libs/shared" in warnings


def test_a_regular_package_split_across_dists_warns(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    # pip and uv merge acme/ in one site-packages; a PEX does not find acme.core beside
    # acme/__init__.py, which another wheel ships.
    repo.commit(
        {
            "src/python/acme/BUILD": "python_sources()",
            "src/python/acme/__init__.py": "VERSION = 1\n",
            "src/python/acme/core/BUILD": "python_sources()",
            "src/python/acme/core/__init__.py": "",
            "src/python/acme/core/api.py": "import acme\n",
            "src/python/acme/core/data/BUILD": "resources(sources=['*.json'])",
            "src/python/acme/core/data/d.json": "{}",
            # A namespace package (no __init__.py) split across dists is fine everywhere.
            "src/python/ns/a/BUILD": "python_sources()",
            "src/python/ns/a/m.py": "",
            "src/python/ns/b/BUILD": "python_sources()",
            "src/python/ns/b/m.py": "",
        }
    )
    with caplog.at_level(logging.WARNING):
        repo.export(
            Address("src/python/acme/core"),
            Address("src/python/acme/core/data"),
            Address("src/python/ns/a"),
            Address("src/python/ns/b"),
        )
    warnings = [" ".join(r.getMessage().split()) for r in caplog.records if r.levelno == logging.WARNING]
    split = [w for w in warnings if "regular package" in w]
    assert len(split) == 1, warnings  # one warning per cause, with the count
    assert split[0].startswith("2 regular packages (with an __init__.py) that other dists install files inside: ")
    assert (
        "- acme/__init__.py (dist monorepo.src.python.acme, src/python/acme:acme) makes `acme` a regular package, "
        "but other dists install files inside it: monorepo.src.python.acme.core, monorepo.src.python.acme.core.data "
        "- acme/core/__init__.py (dist monorepo.src.python.acme.core,"
    ) in split[0]
    assert "but other dists install files inside it: monorepo.src.python.acme.core.data " in split[0]
    assert "PEX" in split[0]
    assert not any("ns/" in w for w in warnings)


URL_REPO = {
    "3rdparty/BUILD": (
        'python_requirement(name="pkg", requirements=["pkg @ git+https://git.example.com/org/pkg.git@v1.6.0"])\n'
        'python_requirement(name="other", requirements=[\'other @ git+https://git.example.com/org/other.git ; platform_system=="Linux"\'])'
    ),
    "src/python/a/BUILD": "python_sources()",
    "src/python/a/m.py": "import pkg\nimport other\n",
    "src/python/b/BUILD": "python_sources()",
    "src/python/b/m.py": "import pkg\n",
}


def test_url_requirements_warn_once_each_naming_the_dists(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(URL_REPO)
    with caplog.at_level(logging.WARNING):
        export = repo.export(Address("src/python/a"), Address("src/python/b"))
    assert requires(export)["monorepo.src.python.b"] == ("pkg@ git+https://git.example.com/org/pkg.git@v1.6.0",)
    warnings = [" ".join(r.getMessage().split()) for r in caplog.records if r.levelno == logging.WARNING]
    about_pkg = [w for w in warnings if "pkg.git" in w]
    assert len(about_pkg) == 1, warnings
    assert "2 dists (monorepo.src.python.a, monorepo.src.python.b)" in about_pkg[0]
    assert "constraints.txt" in about_pkg[0] and "url_requirement_map" in about_pkg[0]
    assert len([w for w in warnings if "other.git" in w]) == 1


def test_url_requirement_map_exports_a_plain_requirement_on_purpose(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(URL_REPO)
    with caplog.at_level(logging.INFO):
        export = repo.export(
            Address("src/python/a"), url_requirement_map={"other": "other>=2", "PKG": "pkg==1.6.0"}
        )
    assert requires(export)["monorepo.src.python.a"] == (
        'other>=2; platform_system == "Linux"',
        "pkg==1.6.0",
    )
    messages = [" ".join(r.getMessage().split()) for r in caplog.records]
    assert not [m for m in messages if "git+https" in m and "constraints.txt" in m]
    assert any("exported as 'pkg==1.6.0'" in m and "url_requirement_map" in m for m in messages), messages


@pytest.mark.parametrize("replacement", ["pkg @ https://mirror.example.com/pkg.whl", "notpkg==1.0", "pkg>=1.0.x", "pkg=="])
def test_a_bad_url_requirement_map_entry_names_it(repo: Repo, replacement: str) -> None:
    repo.commit(URL_REPO)
    with pytest.raises(ExecutionError, match="url_requirement_map maps 'pkg'"):
        repo.export(Address("src/python/b"), url_requirement_map={"pkg": replacement})


def test_defaults_keep_a_fixture_tree_out_of_the_export(repo: Repo) -> None:
    # The idiom docs/README recommend for `tests/fixtures/...`: one `__defaults__` for the tree.
    repo.commit(
        {
            "src/python/tests/BUILD": "__defaults__({(python_sources, resources): dict(skip_export_dist=True)})",
            "src/python/tests/fixtures/BUILD": "python_sources()\nresources(name='data', sources=['*.json'])",
            "src/python/tests/fixtures/f.py": "",
            "src/python/tests/fixtures/case.json": "{}",
            "src/python/a/BUILD": "python_sources()",
            "src/python/a/m.py": "",
        }
    )
    export = repo.export(
        Address("src/python/a"),
        Address("src/python/tests/fixtures"),
        Address("src/python/tests/fixtures", target_name="data"),
    )
    assert [d.name for d in export.dists] == ["monorepo.src.python.a"]
    assert sorted(str(s.address) for s in export.skipped) == [
        "src/python/tests/fixtures:data",
        "src/python/tests/fixtures:fixtures",
    ]
    assert all("skip_export_dist=True" in (s.not_exportable_because or "") for s in export.skipped)


def test_an_export_adds_few_engine_nodes_per_dist_to_what_dependency_resolution_made(repo: Repo) -> None:
    # pantsd checks every engine node an export made again on each run (Pants 2.17 parses every
    # BUILD file again), so nodes per dist are time per dist at 10,000 targets. What `pants
    # dependencies ::` made is shared; an export adds its plan, the dist's name, and the files of
    # its several members (three per dist), and a few per export. Expanding each generator as a
    # spec, and the dist's source roots in one request, added eight more per dist.
    dists = 40
    files = {}
    for i in range(dists):
        files[f"src/python/gen/t{i}/BUILD"] = "python_sources()"
        files[f"src/python/gen/t{i}/a.py"] = f"import gen.t{i - 1}.a\n" if i else ""
        files[f"src/python/gen/t{i}/b.py"] = "import requests\n"
    files["3rdparty/BUILD"] = 'python_requirement(name="requests", requirements=["requests"])'
    repo.commit(files)
    rule_runner = repo.rule_runner
    specs = RawSpecs(recursive_globs=(RecursiveGlobSpec(""),), description_of_origin="the test")
    for target in rule_runner.request(Targets, [specs]):
        rule_runner.request(Addresses, [DependenciesRequest(target[Dependencies])])
    before = rule_runner.scheduler.scheduler.graph_len()
    export = repo.export(*(Address(f"src/python/gen/t{i}") for i in range(dists)))
    added = rule_runner.scheduler.scheduler.graph_len() - before
    assert len(export.dists) == dists
    assert added <= 3 * dists + 40, f"{added} engine nodes for {dists} dists"

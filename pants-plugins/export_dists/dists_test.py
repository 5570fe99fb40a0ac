"""RuleRunner tests for what goes into a dist: names, files and Requires-Dist from the engine."""
from __future__ import annotations

import io
import json
import zipfile
from email.parser import BytesParser

import pytest

from export_dists.conftest import Repo
from export_dists.dists import EdgeKind
from export_dists.export import Export
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError

REQUESTS = 'python_requirement(name="requests", requirements=["requests[socks]>=2.28; python_version<\'3.12\'"])'


def requires(export: Export) -> dict[str, tuple[str, ...]]:
    return {dist.name: dist.requires_dist for dist in export.dists}


def wheel_files(export: Export, name: str) -> dict[str, bytes]:
    dist = next(d for d in export.dists if d.name == name)
    with zipfile.ZipFile(io.BytesIO(dist.wheel.content)) as archive:
        return {n: archive.read(n) for n in archive.namelist() if ".dist-info/" not in n}


def test_names_from_directories_in_two_source_roots(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/a/b/BUILD": 'python_sources(sources=["mod.py"])\npython_sources(name="extra", sources=["extra.py"])',
            "src/python/a/b/mod.py": "X = 1\n",
            "src/python/a/b/extra.py": "Y = 2\n",
            "libs/c/BUILD": "python_sources()",
            "libs/c/x.py": "Z = 3\n",
        }
    )
    roots = (Address("src/python/a/b"), Address("src/python/a/b", target_name="extra"), Address("libs/c"))
    export = repo.export(*roots)
    assert {d.name: d.address for d in export.dists} == {
        "monorepo.src.python.a.b": "src/python/a/b:b",
        "monorepo.src.python.a.b.extra": "src/python/a/b:extra",
        "monorepo.libs.c": "libs/c:c",
    }
    # Files as Python imports them: the source root is stripped.
    assert wheel_files(export, "monorepo.src.python.a.b") == {"a/b/mod.py": b"X = 1\n"}
    assert wheel_files(export, "monorepo.src.python.a.b.extra") == {"a/b/extra.py": b"Y = 2\n"}
    assert wheel_files(export, "monorepo.libs.c") == {"c/x.py": b"Z = 3\n"}

    stripped = repo.export(*roots, strip_source_roots=True, namespace="acme")
    assert sorted(d.name for d in stripped.dists) == ["acme.a.b", "acme.a.b.extra", "acme.c"]


def test_target_at_the_build_root_is_the_namespace(repo: Repo) -> None:
    repo.commit(
        {
            "BUILD": 'python_sources(sources=["top.py"])\npython_sources(name="other", sources=["other.py"])',
            "top.py": "",
            "other.py": "",
        }
    )
    repo.set_options("--source-root-patterns=['/']")
    export = repo.export(Address(""), Address("", target_name="other"))
    assert {d.name: d.address for d in export.dists} == {"monorepo": "//", "monorepo.other": "//:other"}
    assert wheel_files(export, "monorepo") == {"top.py": b""}


def test_first_party_pinned_and_third_party_as_written(repo: Repo) -> None:
    repo.commit(
        {
            "3rdparty/BUILD": REQUESTS,
            "src/python/a/BUILD": "python_sources()",
            "src/python/a/mod.py": "import requests\nfrom c.x import Z\n",
            "libs/c/BUILD": "python_sources()",
            "libs/c/x.py": "Z = 3\n",
        }
    )
    export = repo.export(Address("src/python/a"))
    version = export.info.version
    assert requires(export) == {
        "monorepo.src.python.a": (
            f"monorepo.libs.c=={version}",
            'requests[socks]>=2.28; python_version < "3.12"',
        ),
        "monorepo.libs.c": (),
    }
    plan = repo.plan(Address("src/python/a"))
    assert [dep.identity.name for dep in plan.first_party] == ["monorepo.libs.c"]
    (edge,) = plan.first_party[0].edges
    assert (edge.source, edge.target, edge.kind) == (
        Address("src/python/a", relative_file_path="mod.py"),
        Address("libs/c", relative_file_path="x.py"),
        EdgeKind.INFERRED,
    )
    # The wheel's METADATA says the same.
    dist = next(d for d in export.dists if d.name == "monorepo.src.python.a")
    metadata = BytesParser().parsebytes(dist.wheel.metadata)
    assert metadata.get_all("Requires-Dist") == list(dist.requires_dist)


def test_requirements_from_a_python_requirements_file(repo: Repo) -> None:
    repo.commit(
        {
            "3rdparty/BUILD": "python_requirements(name='reqs')",
            "3rdparty/requirements.txt": "PyYAML>=6 ; sys_platform != 'win32'\nattrs[tests]==23.1.0\n",
            "src/python/a/BUILD": "python_sources()",
            "src/python/a/mod.py": "import yaml\nimport attr\n",
        }
    )
    export = repo.export(Address("src/python/a"))
    assert requires(export)["monorepo.src.python.a"] == (
        "attrs[tests]==23.1.0",
        'PyYAML>=6; sys_platform != "win32"',
    )


def test_explicit_dependency(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/a/BUILD": 'python_sources(dependencies=["libs/d", "src/python/e/y.py"])',
            "src/python/a/mod.py": "",
            "libs/d/BUILD": "python_sources()",
            "libs/d/d.py": "",
            "src/python/e/BUILD": "python_sources()",
            "src/python/e/y.py": "",
        }
    )
    export = repo.export(Address("src/python/a"))
    version = export.info.version
    assert requires(export)["monorepo.src.python.a"] == (
        f"monorepo.libs.d=={version}",
        f"monorepo.src.python.e=={version}",
    )
    plan = repo.plan(Address("src/python/a"))
    assert {dep.identity.name: {e.kind for e in dep.edges} for dep in plan.first_party} == {
        "monorepo.libs.d": {EdgeKind.EXPLICIT},
        "monorepo.src.python.e": {EdgeKind.EXPLICIT},
    }


def test_exclusions_are_honoured(repo: Repo) -> None:
    repo.commit(
        {
            "3rdparty/BUILD": REQUESTS,
            "src/python/a/BUILD": 'python_sources(dependencies=["!src/python/c/x.py", "!3rdparty:requests"])',
            "src/python/a/mod.py": "import requests\nimport c.x\nimport d.y\n",
            "src/python/c/BUILD": "python_sources()",
            "src/python/c/x.py": "",
            "src/python/d/BUILD": "python_sources()",
            "src/python/d/y.py": "",
        }
    )
    export = repo.export(Address("src/python/a"))
    assert requires(export)["monorepo.src.python.a"] == (f"monorepo.src.python.d=={export.info.version}",)
    # The excluded dist is not even pulled into the export.
    assert sorted(requires(export)) == ["monorepo.src.python.a", "monorepo.src.python.d"]
    plan = repo.plan(Address("src/python/a"))
    source = Address("src/python/a", relative_file_path="mod.py")
    assert set(plan.excluded) == {
        type(plan.excluded[0])(source, Address("src/python/c", relative_file_path="x.py"), EdgeKind.EXCLUDED),
        type(plan.excluded[0])(source, Address("3rdparty", target_name="requests"), EdgeKind.EXCLUDED),
    }
    assert plan.third_party == ()


def test_no_self_edge_between_files_of_one_target(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/a/BUILD": "python_sources()",
            "src/python/a/one.py": "from a import two\n",
            "src/python/a/two.py": "from a import one\n",
        }
    )
    plan = repo.plan(Address("src/python/a"))
    assert plan.first_party == () and plan.not_exportable == ()
    export = repo.export(Address("src/python/a"))
    assert requires(export) == {"monorepo.src.python.a": ()}
    assert set(wheel_files(export, "monorepo.src.python.a")) == {"a/one.py", "a/two.py"}
    assert {(f.wheel_path, f.owner) for f in plan.files} == {
        ("a/one.py", Address("src/python/a", relative_file_path="one.py")),
        ("a/two.py", Address("src/python/a", relative_file_path="two.py")),
    }


def test_requires_deduplicated_in_a_stable_order(repo: Repo) -> None:
    repo.commit(
        {
            "3rdparty/BUILD": REQUESTS + '\npython_requirement(name="attrs", requirements=["attrs"])',
            "src/python/a/BUILD": 'python_sources(dependencies=["src/python/z"])',
            # Three files, each importing the same things in a different order.
            "src/python/a/one.py": "import requests\nimport z.m\nimport b.m\nimport attr\n",
            "src/python/a/two.py": "import attr\nimport b.m\nimport requests\n",
            "src/python/a/three.py": "import z.m\nimport b.m\n",
            "src/python/b/BUILD": "python_sources()",
            "src/python/b/m.py": "",
            "src/python/z/BUILD": "python_sources()",
            "src/python/z/m.py": "",
        }
    )
    export = repo.export(Address("src/python/a"))
    version = export.info.version
    assert requires(export)["monorepo.src.python.a"] == (
        f"monorepo.src.python.b=={version}",
        f"monorepo.src.python.z=={version}",
        "attrs",
        'requests[socks]>=2.28; python_version < "3.12"',
    )
    planned = next(p for p in export.planned if p.plan.identity.name == "monorepo.src.python.a")
    b_line = planned.requirements[0]
    assert {e.source.relative_file_path for e in b_line.edges} == {"one.py", "two.py", "three.py"}
    z_line = planned.requirements[1]
    assert {e.kind for e in z_line.edges} == {EdgeKind.EXPLICIT}


def test_cycle_between_two_targets(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/p/BUILD": "python_sources()",
            "src/python/p/x.py": "from q import y\n",
            "src/python/q/BUILD": "python_sources()",
            "src/python/q/y.py": "from p import x\n",
        }
    )
    export = repo.export(Address("src/python/p"))
    version = export.info.version
    assert requires(export) == {
        "monorepo.src.python.p": (f"monorepo.src.python.q=={version}",),
        "monorepo.src.python.q": (f"monorepo.src.python.p=={version}",),
    }
    assert export.requested == (Address("src/python/p"),)


def test_export_dist_name_and_skip_export_dist(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/a/BUILD": "python_sources()",
            "src/python/a/mod.py": "import named.m\n",
            "src/python/named/BUILD": 'python_sources(export_dist_name="acme-named")',
            "src/python/named/m.py": "",
            "src/python/skipped/BUILD": "python_sources(skip_export_dist=True)",
            "src/python/skipped/m.py": "",
        }
    )
    export = repo.export(Address("src/python/a"), Address("src/python/skipped"))
    assert requires(export) == {
        "monorepo.src.python.a": (f"acme-named=={export.info.version}",),
        "acme-named": (),
    }
    assert [s.address for s in export.skipped] == [Address("src/python/skipped")]
    assert "skip_export_dist" in (export.skipped[0].not_exportable_because or "")


def test_invalid_export_dist_name(repo: Repo) -> None:
    repo.commit({"src/python/a/BUILD": 'python_sources(export_dist_name="not a name!")', "src/python/a/m.py": ""})
    with pytest.raises(ExecutionError) as e:
        repo.export(Address("src/python/a"))
    message = str(e.value)
    assert "InvalidExportDistName" in message
    assert "src/python/a" in message and "'not a name!'" in message and "export_dist_name" in message


def test_tests_are_not_exported_and_test_utils_only_when_asked(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/a/BUILD": 'python_sources()\npython_tests(name="tests")\npython_test_utils(name="test_utils")',
            "src/python/a/mod.py": "",
            "src/python/a/mod_test.py": "import a.mod\n",
            "src/python/a/conftest.py": "",
        }
    )
    tests = Address("src/python/a", target_name="tests")
    utils = Address("src/python/a", target_name="test_utils")
    export = repo.export(Address("src/python/a"), tests, utils)
    assert [d.name for d in export.dists] == ["monorepo.src.python.a"]
    assert wheel_files(export, "monorepo.src.python.a").keys() == {"a/mod.py"}
    reasons = {s.address: s.not_exportable_because for s in export.skipped}
    assert set(reasons) == {tests, utils}
    assert "tests are never exported" in (reasons[tests] or "")
    assert "--export-dists-include-test-utils" in (reasons[utils] or "")

    with_utils = repo.export(Address("src/python/a"), tests, utils, include_test_utils=True)
    assert sorted(d.name for d in with_utils.dists) == ["monorepo.src.python.a", "monorepo.src.python.a.test_utils"]
    assert wheel_files(with_utils, "monorepo.src.python.a.test_utils").keys() == {"a/conftest.py"}


def test_resources_are_a_dist_with_source_roots_stripped(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/a/BUILD": 'python_sources(dependencies=[":data"])\nresources(name="data", sources=["data/*.txt"])',
            "src/python/a/mod.py": "",
            "src/python/a/data/words.txt": "alpha\n",
            "src/python/a/data/more.txt": "beta\n",
            "libs/res/BUILD": 'resource(source="table.csv")',
            "libs/res/table.csv": "x,y\n",
        }
    )
    export = repo.export(Address("src/python/a"), Address("libs/res"))
    assert requires(export) == {
        "monorepo.src.python.a": (f"monorepo.src.python.a.data=={export.info.version}",),
        "monorepo.src.python.a.data": (),
        "monorepo.libs.res": (),
    }
    assert wheel_files(export, "monorepo.src.python.a.data") == {
        "a/data/more.txt": b"beta\n",
        "a/data/words.txt": b"alpha\n",
    }
    assert wheel_files(export, "monorepo.libs.res") == {"res/table.csv": b"x,y\n"}


def test_requires_python_from_interpreter_constraints(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/default/BUILD": "python_sources()",
            "src/python/default/m.py": "",
            "src/python/newer/BUILD": 'python_sources(interpreter_constraints=["CPython>=3.10,<3.13"])',
            "src/python/newer/m.py": "",
            "src/python/either/BUILD": 'python_sources(interpreter_constraints=["CPython==3.9.*", "CPython==3.11.*"])',
            "src/python/either/m.py": "",
        }
    )
    export = repo.export(Address("src/python/default"), Address("src/python/newer"), Address("src/python/either"))
    assert {d.name: d.requires_python for d in export.dists} == {
        "monorepo.src.python.default": "<3.12,>=3.9",
        "monorepo.src.python.newer": "<3.13,>=3.10",
        # Two OR-ed ranges are not one specifier set: left out rather than guessed.
        "monorepo.src.python.either": None,
    }
    newer = next(d for d in export.dists if d.name == "monorepo.src.python.newer")
    assert "Requires-Python: <3.13,>=3.10" in newer.wheel.metadata.decode()


def test_provenance_in_the_wheel(repo: Repo) -> None:
    sha = repo.commit({"src/python/a/BUILD": "python_sources()", "src/python/a/m.py": ""})
    (dist,) = repo.export(Address("src/python/a")).dists
    with zipfile.ZipFile(io.BytesIO(dist.wheel.content)) as archive:
        provenance = json.loads(archive.read(f"monorepo_src_python_a-{dist.version}.dist-info/export_dists.json"))
    assert provenance == {
        "address": "src/python/a:a",
        "dirty": False,
        "namespace": "monorepo",
        "sha": sha,
        "version": dist.version,
        "fingerprint": dist.fingerprint,
    }
    assert dist.fingerprint and len(dist.fingerprint) == 64
    assert sha in dist.wheel.metadata.decode()  # the Summary names the commit


def test_single_python_source_target(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/a/BUILD": 'python_sources(sources=["m.py"])\npython_source(name="single", source="s.py")',
            "src/python/a/m.py": "from a import s\n",
            "src/python/a/s.py": "",
        }
    )
    export = repo.export(Address("src/python/a"))
    assert requires(export) == {
        "monorepo.src.python.a": (f"monorepo.src.python.a.single=={export.info.version}",),
        "monorepo.src.python.a.single": (),
    }
    assert wheel_files(export, "monorepo.src.python.a.single") == {"a/s.py": b""}


def test_stripped_names_can_collide_across_source_roots(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/util/BUILD": "python_sources()",
            "src/python/util/m.py": "",
            "libs/util/BUILD": "python_sources()",
            "libs/util/n.py": "",
        }
    )
    roots = (Address("src/python/util"), Address("libs/util"))
    assert sorted(d.name for d in repo.export(*roots).dists) == ["monorepo.libs.util", "monorepo.src.python.util"]
    with pytest.raises(ExecutionError) as e:
        repo.export(*roots, strip_source_roots=True)
    assert "libs/util:util" in str(e.value) and "src/python/util:util" in str(e.value)
    assert "'monorepo-util'" in str(e.value)


def test_parametrized_target_is_one_dist_per_parametrization(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/multi/BUILD": 'python_sources(interpreter_constraints=parametrize(py39=["CPython>=3.9"], py310=["CPython>=3.10"]))',
            "src/python/multi/m.py": "",
            # A dependency on one parametrization: its dist, not the (nonexistent) `multi:multi`.
            "src/python/app/BUILD": 'python_sources(dependencies=["src/python/multi/m.py@interpreter_constraints=py39"])',
            "src/python/app/main.py": "",
        }
    )
    export = repo.export(Address("src/python/app"), Address("src/python/multi", parameters={"interpreter_constraints": "py310"}))
    version = export.info.version
    assert {d.name: (d.requires_dist, d.requires_python) for d in export.dists} == {
        "monorepo.src.python.app": ((f"monorepo.src.python.multi.py39=={version}",), "<3.12,>=3.9"),
        "monorepo.src.python.multi.py310": ((), ">=3.10"),
        "monorepo.src.python.multi.py39": ((), ">=3.9"),
    }


def test_generator_whose_sources_match_nothing(repo: Repo) -> None:
    # Pants warns about the unmatched globs; the export holds an empty dist rather than failing
    # on the generator's missing `dependencies` field.
    repo.commit({"src/python/empty/BUILD": "python_sources()", "src/python/empty/README": "no code yet\n"})
    plan = repo.plan(Address("src/python/empty"))
    assert plan.identity.name == "monorepo.src.python.empty"
    assert plan.files == () and plan.first_party == () and plan.third_party == ()


@pytest.mark.parametrize("strip_source_roots", [False, True])
def test_files_under_no_source_root_are_a_clear_error(repo: Repo, strip_source_roots: bool) -> None:
    repo.commit({"config/BUILD": "resources(sources=['*.yaml'])", "config/app.yaml": "a: 1\n"})
    with pytest.raises(ExecutionError) as e:
        repo.export(Address("config"), strip_source_roots=strip_source_roots)
    message = " ".join(str(e.value).split())
    assert "NoSourceRootForDist: The target config:config has files under no source root" in message
    assert "[source].root_patterns" in message and "skip_export_dist=True" in message

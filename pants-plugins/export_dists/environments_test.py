"""Environment dists: the closure and third-party union (plain), then exports and --explain (RuleRunner)."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from export_dists_core.compat import Marker
from export_dists.conftest import ARGS, ENV, ENV_INHERIT, Repo
from export_dists.dists import DependencyEdge, DistIdentity, DistKind, EdgeKind
from export_dists.environments import closure_of, markers_can_overlap, third_party_conflicts
from export_dists.export import Export
from export_dists.goal import ExportDists
from export_dists.requirements import RequirementLine
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError


def _line(text: str, member: str, requirement_target: str = "3rdparty:reqs") -> RequirementLine:
    edge = DependencyEdge(Address(member), Address(requirement_target), EdgeKind.INFERRED)
    return RequirementLine(text, (edge,), first_party=False)


def test_identical_lines_and_extras_are_no_conflict() -> None:
    lines = [
        _line("attrs>=22.2", "a"),
        _line("requests>=2.28", "a"),
        _line("requests[socks]>=2.28", "b"),
        _line("Requests[security]>=2.28", "c"),
    ]
    assert third_party_conflicts(lines) == ()


def test_two_specifiers_for_one_project_conflict() -> None:
    lines = [_line("attrs>=23.1", "a", "3rdparty:attrs"), _line("attrs<22", "b", "legacy:attrs"), _line("six", "b")]
    (conflict,) = third_party_conflicts(lines)
    assert conflict.project == "attrs"
    assert {conflict.first.text, conflict.second.text} == {"attrs>=23.1", "attrs<22"}
    # A URL differs from a version specifier, and from another URL.
    url = _line("attrs @ https://example.com/attrs-23.1.0-py3-none-any.whl", "c")
    assert len(third_party_conflicts([lines[0], url])) == 1


def test_markers_that_exclude_each_other_are_no_conflict() -> None:
    lines = [
        _line('tomli>=2; python_version < "3.11"', "a"),
        _line('tomli>=1.1; python_version >= "3.11"', "b"),
        _line('pywin32>=300; sys_platform == "win32"', "a"),
        _line('pywin32>=305; sys_platform == "linux"', "b"),
    ]
    assert third_party_conflicts(lines) == ()
    # ...but a marker that can hold together with no marker at all is one.
    overlapping = [_line('tomli>=2; python_version < "3.11"', "a"), _line("tomli>=1.1", "b")]
    assert len(third_party_conflicts(overlapping)) == 1


def test_markers_can_overlap() -> None:
    assert markers_can_overlap(None, Marker('python_version < "3.8"'))
    assert markers_can_overlap(Marker('python_version < "3.11"'), Marker('python_version > "3.9"'))
    assert not markers_can_overlap(Marker('python_version < "3.10"'), Marker('python_version >= "3.10"'))
    assert not markers_can_overlap(
        Marker('platform_python_implementation == "PyPy"'), Marker('implementation_name == "cpython"')
    )


def test_closure_follows_direct_edges_through_nested_environments_and_cycles() -> None:
    class Plan:  # only what closure_of reads
        def __init__(self, *deps: str) -> None:
            self.first_party = tuple(
                type("Dep", (), {"identity": DistIdentity(Address(d), "python_sources", d, DistKind.PYTHON)})()
                for d in deps
            )

    plans = {Address(k): Plan(*v) for k, v in {
        "env": ("a", "inner"), "inner": ("c",), "a": ("b",), "b": ("a",), "c": (), "x": ("a",),
    }.items()}
    assert closure_of(Address("env"), plans) == tuple(Address(n) for n in ("a", "b", "c", "inner"))  # type: ignore[arg-type]


# RuleRunner: two apps sharing libraries, and an environment over both.
SHARED = {
    "3rdparty/BUILD": (
        'python_requirement(name="attrs", requirements=["attrs>=22.2"])\n'
        'python_requirement(name="six", requirements=["six>=1.16"])\n'
        'python_requirement(name="tomli", requirements=["tomli>=2; python_version<\'3.11\'"])\n'
        'python_requirement(name="numpy", requirements=["numpy>=1.24"])\n'
    ),
    "src/python/app1/BUILD": "python_sources()",
    "src/python/app1/main.py": "import lib.core.c\nimport six\n",
    "src/python/app2/BUILD": "python_sources()",
    "src/python/app2/main.py": "import lib.core.c\nimport lib.util.u\nimport tomli\n",
    "libs/lib/core/BUILD": "python_sources()",
    "libs/lib/core/c.py": "import lib.util.u\nimport attrs\n",
    "libs/lib/util/BUILD": "python_sources()",
    "libs/lib/util/u.py": "import attrs\n",
    "libs/lib/unrelated/BUILD": "python_sources()",
    "libs/lib/unrelated/x.py": "",
    "envs/BUILD": (
        'export_dists_environment(name="ml", dependencies=["src/python/app1", "src/python/app2", "3rdparty:numpy"],'
        ' description="the two apps")\n'
    ),
}
ML = "monorepo.envs.ml"


def _by_name(export: Export) -> dict:
    return {d.name: d for d in export.dists}


def test_environment_pins_its_closure_and_unions_third_party(repo: Repo) -> None:
    repo.commit(SHARED)
    export = repo.export(Address("envs", target_name="ml"))
    version = export.info.version
    dists = _by_name(export)
    assert sorted(dists) == [
        "monorepo.envs.ml",
        "monorepo.libs.lib.core",
        "monorepo.libs.lib.util",
        "monorepo.src.python.app1",
        "monorepo.src.python.app2",
    ]
    assert dists[ML].requires_dist == (
        f"monorepo.libs.lib.core=={version}",
        f"monorepo.libs.lib.util=={version}",
        f"monorepo.src.python.app1=={version}",
        f"monorepo.src.python.app2=={version}",
        "attrs>=22.2",
        "numpy>=1.24",
        "six>=1.16",
        'tomli>=2; python_version < "3.11"',
    )
    assert dists[ML].address == "envs:ml"
    # No files of its own: only its dist-info, which says it is an environment.
    with zipfile.ZipFile(io.BytesIO(dists[ML].wheel.content)) as wheel:
        names = wheel.namelist()
        assert all(".dist-info/" in n for n in names), names
        info = json.loads(wheel.read(next(n for n in names if n.endswith("export_dists.json"))))
    assert info["environment"] is True and info["address"] == "envs:ml"
    assert b"pins 4 first-party dists" in dists[ML].wheel.metadata
    # The members are ordinary dists: an environment changes nothing about them.
    plain = _by_name(repo.export(Address("src/python/app1"), Address("src/python/app2")))
    for name, dist in plain.items():
        assert dists[name].wheel.content == dist.wheel.content


def test_environment_version_follows_its_members_content(repo: Repo) -> None:
    first = repo.commit(SHARED)
    env = Address("envs", target_name="ml")
    before = _by_name(repo.export(env))
    assert before[ML].version == f"0.1+g{first[:12]}"
    # A dist outside the set changes: the environment keeps its version and its bytes.
    repo.commit({"libs/lib/unrelated/x.py": "X = 1\n"})
    same = _by_name(repo.export(env))
    assert same[ML].version == before[ML].version and same[ML].wheel.content == before[ML].wheel.content
    # A member deep in the set changes: the environment moves with it and pins its new version.
    third = repo.commit({"libs/lib/util/u.py": "import attrs\nU = 1\n"})
    after = _by_name(repo.export(env))
    assert after[ML].version == after["monorepo.libs.lib.util"].version == f"0.3+g{third[:12]}"
    assert f"monorepo.libs.lib.util=={after['monorepo.libs.lib.util'].version}" in after[ML].requires_dist
    assert f"monorepo.src.python.app1=={after['monorepo.src.python.app1'].version}" in after[ML].requires_dist
    assert after[ML].fingerprint != before[ML].fingerprint
    # Its own declaration is an input too.
    fourth = repo.commit({"envs/BUILD": SHARED["envs/BUILD"].replace("the two apps", "both apps")})
    assert _by_name(repo.export(env))[ML].version == f"0.4+g{fourth[:12]}"


def test_environment_of_environments_and_a_name_of_its_own(repo: Repo) -> None:
    repo.commit(
        {
            **SHARED,
            "envs/BUILD": SHARED["envs/BUILD"]
            + 'export_dists_environment(name="small", dependencies=["libs/lib/util"], export_dist_name="acme-small")\n'
            + 'export_dists_environment(name="all", dependencies=[":small", "libs/lib/unrelated"])\n',
        }
    )
    export = repo.export(Address("envs", target_name="all"))
    version = export.info.version
    dists = _by_name(export)
    assert dists["monorepo.envs.all"].requires_dist == (
        f"acme-small=={version}",
        f"monorepo.libs.lib.unrelated=={version}",
        f"monorepo.libs.lib.util=={version}",
        "attrs>=22.2",
    )
    assert dists["acme-small"].requires_dist == (f"monorepo.libs.lib.util=={version}", "attrs>=22.2")


def test_conflicting_third_party_lines_are_an_error_naming_both_targets(repo: Repo) -> None:
    repo.commit(
        {
            **SHARED,
            # Another pin of attrs (as a second resolve or requirements file would have).
            "libs/legacy/BUILD": (
                'python_requirement(name="attrs", requirements=["attrs<22"], modules=["attrs_legacy"])\n'
                "python_sources()"
            ),
            "libs/legacy/old.py": "import attrs_legacy\n",
            "envs/BUILD": 'export_dists_environment(name="ml", dependencies=["src/python/app1", "libs/legacy"])',
        }
    )
    # Each member alone is fine; only the set is inconsistent.
    repo.export(Address("src/python/app1"), Address("libs/legacy"))
    with pytest.raises(ExecutionError) as e:
        repo.export(Address("envs", target_name="ml"))
    message = str(e.value)
    assert "EnvironmentConflict" in message
    assert "monorepo.envs.ml (envs:ml)" in message
    assert "`attrs<22` from libs/legacy:attrs, required by libs/legacy:legacy" in message
    assert "`attrs>=22.2` from 3rdparty:attrs, required by libs/lib/core:core, libs/lib/util:util" in message
    assert "one `python_requirement` per project" in message


def test_export_of_everything_and_explain(repo: Repo, tmp_path: Path) -> None:
    sha = repo.commit(SHARED)
    result = repo.rule_runner.run_goal_rule(
        ExportDists, global_args=ARGS, args=[f"--export-dists-output-dir={tmp_path}", "::"], env=ENV, env_inherit=ENV_INHERIT
    )
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((tmp_path / sha / "manifest.json").read_text())
    entry = next(d for d in manifest["dists"] if d["name"] == ML)
    assert entry["address"] == "envs:ml" and len(entry["requires_dist"]) == 8
    assert (tmp_path / sha / "simple" / "monorepo-envs-ml" / "index.html").is_file()

    result = repo.rule_runner.run_goal_rule(
        ExportDists, global_args=ARGS, args=["--export-dists-explain=envs:ml", "::"], env=ENV, env_inherit=ENV_INHERIT
    )
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert f"dist:     {ML}" in out
    assert "target:   envs:ml  (export_dists_environment)" in out
    assert "environment: 4 first-party dists (the closure of its dependencies) and their third-party requirements; no files" in out
    version = f"0.1+g{sha[:12]}"
    lines = out.splitlines()
    start = lines.index(f"  monorepo.libs.lib.util=={version}")
    # A dist in the set by two paths shows both edges that brought it in.
    assert lines[start + 1 : start + 3] == [
        "      inferred import: libs/lib/core/c.py -> libs/lib/util/u.py",
        "      inferred import: src/python/app2/main.py -> libs/lib/util/u.py",
    ]
    start = lines.index(f"  monorepo.src.python.app1=={version}")
    assert lines[start + 1] == "      explicit dependency: envs:ml -> src/python/app1:app1"
    start = lines.index("  numpy>=1.24")
    assert lines[start + 1] == "      explicit dependency: envs:ml -> 3rdparty:numpy"

"""Files no import can reach (`bin/migrations/v3.5/x.py`): found, warned at export and by --explain."""
from __future__ import annotations

import logging

import pytest

from export_dists.conftest import ARGS, ENV, ENV_INHERIT, Repo
from export_dists.goal import ExportDists
from export_dists.importable import UnimportableFile, unimportable_files, unimportable_part
from pants.engine.addresses import Address


def test_the_first_name_that_is_not_an_identifier() -> None:
    assert unimportable_part("st2common/bin/migrations/v3.5/migrate.py") == "v3.5"
    assert unimportable_part("tools/my-tool.py") == "my-tool"
    assert unimportable_part("pkg/class/m.py") == "class"  # a keyword: `import pkg.class.m` is a syntax error
    assert unimportable_part("pkg/match/case.py") is None  # soft keywords are names
    assert unimportable_part("pkg/__init__.py") is None
    assert unimportable_part("pkg/v3.5/schema.json") is None  # data files are read by path
    assert unimportable_part("pkg/3rdparty.py") == "3rdparty"
    assert unimportable_files(["a/b.py", "a/v1.0/__init__.py", "a/v1.0/x.py"]) == (
        UnimportableFile("a/v1.0/__init__.py", "v1.0"),
        UnimportableFile("a/v1.0/x.py", "v1.0"),
    )
    assert UnimportableFile("a/class/x.py", "class").why == "`class` is a Python keyword"


MIGRATIONS = {
    "src/python/st2common/BUILD": "python_sources()",
    "src/python/st2common/util.py": "",
    "src/python/st2common/bin/migrations/v3.5/BUILD": "python_sources()",
    "src/python/st2common/bin/migrations/v3.5/migrate.py": "import st2common.util\n",
    "src/python/st2common/bin/migrations/v3.5/check.py": "",
    "src/python/st2common/bin/migrations/v3.5/data/BUILD": "resources(sources=['*.json'])",
    "src/python/st2common/bin/migrations/v3.5/data/map.json": "{}",
}


def test_export_warns_once_naming_the_dist_the_files_and_the_fix(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(MIGRATIONS)
    with caplog.at_level(logging.WARNING):
        export = repo.export(Address("src/python/st2common/bin/migrations/v3.5"), Address("src/python/st2common/bin/migrations/v3.5/data"))
    assert "monorepo.src.python.st2common.bin.migrations.v3.5" in [d.name for d in export.dists]
    warnings = [" ".join(r.getMessage().split()) for r in caplog.records if "no import can reach" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("1 dist ships Python files that no import can reach")
    assert (
        "- monorepo.src.python.st2common.bin.migrations.v3.5 (src/python/st2common/bin/migrations/v3.5:v3.5): "
        "st2common/bin/migrations/v3.5/check.py (`v3.5` is not a Python identifier), "
        "st2common/bin/migrations/v3.5/migrate.py (`v3.5` is not a Python identifier)"
    ) in warnings[0]
    assert "skip_export_dist=True" in warnings[0] and "[export-dists].skip_paths" in warnings[0]
    assert "data" not in warnings[0].split("Scripts")[0]  # the resources dist's JSON is not a module


def test_explain_lists_the_files_and_skip_paths_leaves_the_target_out(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(MIGRATIONS)
    explained = repo.rule_runner.run_goal_rule(
        ExportDists, global_args=ARGS, args=["--export-dists-explain=src/python/st2common/bin/migrations/v3.5", "::"],
        env=ENV, env_inherit=ENV_INHERIT,
    )
    assert explained.exit_code == 0, explained.stderr
    assert "WARNING: 2 Python files no import can reach:" in explained.stdout
    assert "  st2common/bin/migrations/v3.5/migrate.py  (`v3.5` is not a Python identifier)" in explained.stdout

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        export = repo.export(
            Address("src/python/st2common"),
            Address("src/python/st2common/bin/migrations/v3.5"),
            skip_paths=("src/python/st2common/bin/migrations/v3.5",),
        )
    assert [d.name for d in export.dists] == ["monorepo.src.python.st2common"]
    assert not [r for r in caplog.records if "no import can reach" in r.getMessage()]

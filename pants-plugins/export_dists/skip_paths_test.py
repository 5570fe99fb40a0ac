"""[export-dists].skip_paths: whole trees (tests/, fixtures/) left out by one glob, custom target types too."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from export_dists.conftest import ARGS, ENV, ENV_INHERIT, Repo, make_rule_runner
from export_dists.goal import ExportDists
from export_dists.skip_paths import InvalidSkipPath, check, matching_pattern
from pants.core.target_types import ResourcesGeneratingSourcesField
from pants.engine.addresses import Address
from pants.engine.target import COMMON_TARGET_FIELDS, Dependencies, Target
from pants.testutil.rule_runner import GoalRuleResult, RuleRunner


class PackMetadataSourcesField(ResourcesGeneratingSourcesField):
    pass


class PackMetadata(Target):
    """Like StackStorm's `pack_metadata`: a custom type the plugin adds no `skip_export_dist` field to."""

    alias = "pack_metadata"
    core_fields = (*COMMON_TARGET_FIELDS, Dependencies, PackMetadataSourcesField)
    help = "Pack metadata (a custom target type)."


@pytest.fixture(scope="module")
def rule_runner() -> RuleRunner:
    return make_rule_runner([PackMetadata])


# A monorepo with test trees of every kind: python_tests, fixtures as python_sources, a `tests`
# directory of helpers, and a custom target type inside a tests directory.
TREES = {
    "src/python/app/BUILD": "python_sources()",
    "src/python/app/m.py": "import app.tests.fixtures.f\nimport lib.m\n",
    "src/python/app/tests/BUILD": "python_tests()",
    "src/python/app/tests/test_m.py": "import app.m\n",
    "src/python/app/tests/fixtures/BUILD": "python_sources()",
    "src/python/app/tests/fixtures/f.py": "",
    "src/python/lib/BUILD": "python_sources()",
    "src/python/lib/m.py": "",
    "src/python/lib/tests/BUILD": "python_sources()",
    "src/python/lib/tests/helper.py": "import lib.m\n",
    "src/python/packs/core/BUILD": "pack_metadata(sources=['pack.yaml'])",
    "src/python/packs/core/pack.yaml": "name: core\n",
    "src/python/packs/core/tests/BUILD": "pack_metadata(sources=['*.yaml'])",
    "src/python/packs/core/tests/case.yaml": "x: 1\n",
}
SKIP = "--export-dists-skip-paths=['**/tests']"


def run(repo: Repo, *args: str) -> GoalRuleResult:
    return repo.rule_runner.run_goal_rule(ExportDists, global_args=ARGS, args=args, env=ENV, env_inherit=ENV_INHERIT)


def test_patterns_match_a_directory_and_everything_below_it() -> None:
    patterns = ("**/tests", "st2common/bin/migrations/v3.5/", "contrib/*/fixtures/**")
    assert matching_pattern(patterns, "tests") == "**/tests"
    assert matching_pattern(patterns, "st2api/tests/unit/fixtures") == "**/tests"
    assert matching_pattern(patterns, "st2api/testsuite") is None
    assert matching_pattern(patterns, "st2common/bin/migrations/v3.5") == "st2common/bin/migrations/v3.5/"
    assert matching_pattern(patterns, "st2common/bin/migrations") is None
    assert matching_pattern(patterns, "contrib/linux/fixtures/a") == "contrib/*/fixtures/**"
    assert matching_pattern(patterns, "contrib/linux/a/fixtures") is None
    assert matching_pattern(("/tests/",), "tests/unit") == "/tests/"
    assert matching_pattern(("/tests/",), "a/tests") is None
    assert matching_pattern(patterns, "") is None  # the build root's own targets


@pytest.mark.parametrize("pattern", ["**", "/", "!tests", "../other"])
def test_a_pattern_that_cannot_be_meant_is_refused(pattern: str) -> None:
    with pytest.raises(InvalidSkipPath, match=re.escape(f"has the pattern {pattern!r}, but")):
        check(("**/tests", pattern))


def test_one_setting_leaves_every_test_tree_out_custom_target_types_too(repo: Repo, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sha = repo.commit(TREES)
    out = tmp_path / "exports"
    before = run(repo, f"--export-dists-output-dir={out / 'all'}", "::")
    assert before.exit_code == 0, before.stderr
    exported = [d["name"] for d in json.loads((out / "all" / sha / "manifest.json").read_text())["dists"]]
    assert "monorepo.src.python.packs.core.tests" in exported and "monorepo.src.python.lib.tests" in exported

    with caplog.at_level(logging.WARNING):
        result = run(repo, SKIP, f"--export-dists-output-dir={out / 'skipped'}", "::")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((out / "skipped" / sha / "manifest.json").read_text())
    assert [d["name"] for d in manifest["dists"]] == [
        "monorepo.src.python.app",
        "monorepo.src.python.lib",
        "monorepo.src.python.packs.core",
    ]
    # The summary counts what each pattern left out (python_tests are never dists anyway).
    assert "left out by [export-dists].skip_paths: 3 targets (**/tests: 3)" in result.stderr
    # An exported target that depends on a left-out one is told which pattern did it.
    warnings = [" ".join(r.getMessage().split()) for r in caplog.records if r.levelno == logging.WARNING]
    left_out = [w for w in warnings if "left out of Requires-Dist" in w]
    assert len(left_out) == 1, warnings
    assert "src/python/app:app (dist monorepo.src.python.app) depends on src/python/app/tests/fixtures:fixtures" in left_out[0]
    assert "[export-dists].skip_paths leaves its directory out (`**/tests`)" in left_out[0]


def test_explain_names_the_pattern(repo: Repo) -> None:
    repo.commit(TREES)
    custom = run(repo, SKIP, "--export-dists-explain=src/python/packs/core/tests", "::")
    assert custom.exit_code == 0, custom.stderr
    assert "target:   src/python/packs/core/tests:tests  (pack_metadata)" in custom.stdout
    assert "not exported: [export-dists].skip_paths leaves its directory out (`**/tests`)" in custom.stdout

    app = run(repo, SKIP, "--export-dists-explain=src/python/app", "::")
    assert app.exit_code == 0, app.stderr
    assert "left out of these specs by [export-dists].skip_paths: 3 targets (**/tests: 3)" in app.stdout
    assert "src/python/app/tests/fixtures:fixtures (python_sources): [export-dists].skip_paths" in app.stdout

    # A dependency the pattern left out is explained even when the specs do not name it.
    fixture = run(repo, SKIP, "--export-dists-explain=src/python/app/tests/fixtures", "src/python/app")
    assert fixture.exit_code == 0, fixture.stderr
    assert "not exported: [export-dists].skip_paths leaves its directory out (`**/tests`)" in fixture.stdout


def test_a_bad_pattern_stops_the_goal_naming_it(repo: Repo) -> None:
    repo.commit(TREES)
    with pytest.raises(Exception, match=r"skip_paths has the pattern '\*\*'"):
        run(repo, "--export-dists-skip-paths=['**/tests', '**']", "::")


def test_a_requested_target_under_a_pattern_is_left_out(repo: Repo) -> None:
    repo.commit(TREES)
    export = repo.export(Address("src/python/lib"), Address("src/python/lib/tests"), skip_paths=("**/tests",))
    assert [d.name for d in export.dists] == ["monorepo.src.python.lib"]
    assert [(str(s.address), s.skipped_by) for s in export.skipped] == [("src/python/lib/tests:tests", "**/tests")]

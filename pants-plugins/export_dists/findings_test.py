"""The export's warnings: one per cause with a count, and said in one line when a commit changed none."""
from __future__ import annotations

import logging

import pytest

from export_dists.conftest import Repo
from export_dists.findings import Cause, Finding, report
from pants.engine.addresses import Address

CAUSE = Cause("things that are wrong", "Fix them.", one="thing that is wrong")
OTHER = Cause("other things", "Fix those too.")


def test_one_message_per_cause_with_the_count_and_some_instances() -> None:
    findings = [Finding(CAUSE, f"thing {i}") for i in range(8)] + [Finding(OTHER, "x"), Finding(CAUSE, "thing 0")]
    messages = report(findings, examples=3)
    assert messages == (
        "8 things that are wrong:\n  - thing 0\n  - thing 1\n  - thing 2\n"
        "  ... and 5 more (--export-dists-warning-examples=-1 lists every one)\nFix them.",
        "1 other things:\n  - x\nFix those too.",
    )
    single = Cause("other things that are wrong", "Fix it.", one="other thing that is wrong")
    assert report([Finding(single, "a")], examples=-1) == ("1 other thing that is wrong:\n  - a\nFix it.",)


def test_the_next_export_says_an_unchanged_cause_in_one_line_and_lists_only_new_instances() -> None:
    report([Finding(CAUSE, "a"), Finding(CAUSE, "b"), Finding(OTHER, "x")])
    again = report([Finding(CAUSE, "a"), Finding(CAUSE, "b")])
    assert again == ("2 things that are wrong: the same as in the previous export of this process, which listed them.",)
    changed = report([Finding(CAUSE, "b"), Finding(CAUSE, "c"), Finding(OTHER, "x")])
    assert changed[0] == (
        "2 things that are wrong (1 new since the previous export of this process, 1 gone):\n  - c\nFix them."
    )
    # OTHER was absent from the export before: listed in full again, not "the same".
    assert changed[1] == "1 other things:\n  - x\nFix those too."


FIXTURE_DEPENDENCIES = {
    "src/python/a/BUILD": "python_sources()",
    "src/python/a/m.py": "".join(f"import fx.f{i}.m\n" for i in range(8)),
    **{f"src/python/fx/f{i}/BUILD": "python_sources(skip_export_dist=True)" for i in range(8)},
    **{f"src/python/fx/f{i}/m.py": "" for i in range(8)},
}


def test_many_dependencies_on_skipped_targets_are_one_warning(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(FIXTURE_DEPENDENCIES)
    with caplog.at_level(logging.WARNING):
        repo.export(Address("src/python/a"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    lines = warnings[0].splitlines()
    assert lines[0] == "8 dependencies left out of Requires-Dist: they cannot be dists:"
    assert lines[1].startswith("  - src/python/a:a (dist monorepo.src.python.a) depends on src/python/fx/f0:f0 (`python_sources`, via ")
    assert len([line for line in lines if line.startswith("  - ")]) == 5
    assert lines[6] == "  ... and 3 more (--export-dists-warning-examples=-1 lists every one)"
    assert lines[7] == "Why: it sets skip_export_dist=True; remove that, or exclude the dependency with `!`."

    # The next commit (in the same process, as with pantsd) changes none of them: one line.
    repo.commit({"src/python/a/other.py": ""})
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        repo.export(Address("src/python/a"), warning_examples=-1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "8 dependencies left out of Requires-Dist: they cannot be dists: the same as in the previous export "
        "of this process, which listed them."
    ]

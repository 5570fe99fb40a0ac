"""The plans an export keeps from the one before it in the same process: after a commit that only
edits source files, only the dists owning those files are planned again.

In pantsd every commit dirties the engine's nodes of every target (a changed file's directory feeds
the globs all of them depend on), and before an export can use a dist's identity and plan the engine
re-checks them and everything they were made of: at 10,000 targets that was 8-16 s of an export's
10-17 s after a one-leaf commit (docs/benchmarks.md). Yet such a commit can change only the plans of
the dists that own the edited files. A plan holds its dist's files (their digest), the edges its own
files' imports make, and its dependencies' names; a name comes from a BUILD file, the options and
the source roots. Editing a module changes its own dist's digest and imports, and nothing else a plan
holds.

The plans of the export before are kept when all of these hold, and otherwise every dist is planned
(`export_dists.export`'s debug log says which, and why):

- the same build root, naming settings and options: the command line and `PANTS_*` variables
  (the export-dists goal's own flags and variables aside: its naming settings are compared as
  such), and the values of [GLOBAL], [python], [python-infer] and [source] (config files outside
  the repository included);
- both exports are of clean work trees (no uncommitted or untracked change), so what Pants read is
  each commit's files, and git can say what differs;
- git's diff between the two commits only modifies files: none added, removed, renamed or changing
  type, so every target owns what it owned;
- no modified file is a BUILD file, a BUILD file prelude or an `__init__.py` (whose content makes
  every module below it depend on it, [python-infer].init_files);
- every modified file is owned, and only by `python_source`, `python_test` or `resource` targets,
  whose files are read for their own target alone (not a requirements file, lockfile or config).

A cache, never the source of truth: an export from kept plans equals one that plans everything
(replan_test.py compares them commit after commit). [export-dists].reuse_plans = false turns it off.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Any, Mapping

from pants.backend.python.dependency_inference.subsystem import PythonInferSubsystem
from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import PythonSourceField, PythonTestSourceField
from pants.base.build_root import BuildRoot
from pants.core.target_types import ResourceSourceField
from pants.engine.addresses import Address
from pants.engine.internals.build_files import BuildFileOptions
from pants.engine.internals.session import SessionValues
from pants.engine.rules import collect_rules, rule
from pants.engine.target import Target
from pants.option.global_options import GlobalOptions
from pants.option.options_bootstrapper import OptionsBootstrapper
from pants.source.source_root import SourceRootConfig

from export_dists.dists import DistIdentity, DistPlan, NamingSettings
from export_dists.engine import by_name


@dataclass(frozen=True)
class PlanningContext:
    """What every plan depends on besides the repository's files, compared by value."""

    build_root: str
    settings: NamingSettings
    args: tuple[str, ...]
    pants_env: tuple[tuple[str, str], ...]
    options: tuple[Any, ...]  # subsystems: they compare by their options' values
    build_files: BuildFileOptions


@dataclass(frozen=True)
class PlanningContextRequest:
    settings: NamingSettings


# The export-dists goal's own options shape plans only through its naming settings, compared as
# such: its flags and variables are left out of the command line compared, so that exports into a
# new output directory each time (the relay's pull builds) keep plans too.
_GOAL = "export-dists"


def _plan_args(args: tuple[str, ...]) -> tuple[str, ...]:
    """The command line without the program and the export-dists goal's own flags (`--export-dists-x`
    anywhere, and any flag right after the goal's name, which is the goal's)."""
    kept: list[str] = []
    after_goal = False
    for arg in args[1:]:
        if arg.startswith(("--export-dists-", "--no-export-dists-")) or (after_goal and arg.startswith("-")):
            continue
        after_goal = arg == _GOAL
        kept.append(arg)
    return tuple(kept)


def _pants_env(bootstrapper: OptionsBootstrapper) -> tuple[tuple[str, str], ...]:
    # `env_tuples` (the PANTS_* variables) before Pants 2.2x's Rust options parser, `env` (all) since.
    pairs = getattr(bootstrapper, "env_tuples", None)
    if pairs is None:
        pairs = tuple(getattr(bootstrapper, "env", {}).items())
    return tuple(sorted((k, v) for k, v in pairs if k.startswith("PANTS_") and not k.startswith("PANTS_EXPORT_DISTS_")))


@by_name
@rule(desc="Read what plans depend on besides files")
async def planning_context(
    request: PlanningContextRequest,
    session_values: SessionValues,
    build_root: BuildRoot,
    build_files: BuildFileOptions,
    global_options: GlobalOptions,
    python_setup: PythonSetup,
    python_infer: PythonInferSubsystem,
    source_root_config: SourceRootConfig,
) -> PlanningContext:
    bootstrapper = session_values[OptionsBootstrapper]
    return PlanningContext(
        build_root=build_root.path,
        settings=request.settings,
        # Without the program: the run that starts pantsd is `pants`, the next ones its native client.
        args=_plan_args(tuple(bootstrapper.args)),
        pants_env=_pants_env(bootstrapper),
        options=(global_options, python_setup, python_infer, source_root_config),
        build_files=build_files,
    )


@dataclass(frozen=True)
class KeptPlans:
    """An export's plans, kept for the next export in this process."""

    context: PlanningContext
    sha: str  # a clean export's commit
    roots: tuple[Address, ...]
    identities: tuple[DistIdentity, ...]  # the roots', in their order
    plans: Mapping[Address, DistPlan]  # every dist planned (the closure), as dist_plan made them


# The last few clean exports' plans (newest last): one per context, so exports of two settings or
# two repositories in one pantsd keep theirs. The plans are the engine's own objects.
_KEPT: list[KeptPlans] = []
_KEPT_MAX = 2


def keep(kept: KeptPlans) -> None:
    _KEPT[:] = [k for k in _KEPT if k.context != kept.context][-(_KEPT_MAX - 1) :] + [kept]


def kept_for(context: PlanningContext) -> KeptPlans | str | None:
    """The plans kept under this context; else why the ones of this build root are not usable, or
    None if there are none."""
    kept = next((k for k in reversed(_KEPT) if k.context == context), None)
    if kept is not None:
        return kept
    before = next((k.context for k in reversed(_KEPT) if k.context.build_root == context.build_root), None)
    if before is None:
        return None
    if before.settings != context.settings:
        return "[export-dists] naming settings differ from the export before"
    if before.args != context.args:
        changed = [f"-{a}" for a in before.args if a not in context.args] + [f"+{a}" for a in context.args if a not in before.args]
        return f"the command line differs from the export before ({' '.join(changed[:4]) or 'order'})"
    if before.pants_env != context.pants_env:
        return "the PANTS_* environment variables differ from the export before"
    if before.build_files != context.build_files:
        return "the BUILD file options differ from the export before"
    scopes = [f"[{new.options_scope}]" for old, new in zip(before.options, context.options) if old != new]
    return f"the options of {', '.join(scopes)} differ from the export before"


def forget() -> None:
    _KEPT.clear()


def modified_files(diff: str) -> tuple[tuple[str, ...], str | None]:
    """The files `git diff --name-status -z --no-renames` lists as modified, or why not only that."""
    fields = diff.split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    if len(fields) % 2:
        return (), "git's diff could not be read"
    paths = []
    for status, path in zip(fields[::2], fields[1::2]):
        if status != "M":
            what = {"A": "adds", "D": "removes", "T": "changes the type of"}.get(status[:1], "changes")
            return (), f"the commit {what} {path}"
        paths.append(path)
    return tuple(paths), None


def _matches(path: str, globs: tuple[str, ...]) -> bool:
    # fnmatch's `*` crosses `/`: a glob can only match more paths than Pants would, never fewer.
    return any(fnmatch.fnmatchcase(path, g) or fnmatch.fnmatchcase(os.path.basename(path), g) for g in globs)


def unsafe_file(paths: tuple[str, ...], build_files: BuildFileOptions) -> str | None:
    """Why one of the modified `paths` may change plans other than its owners', or None."""
    for path in paths:
        if _matches(path, tuple(build_files.patterns)):
            return f"the commit edits the BUILD file {path}"
        if _matches(path, tuple(build_files.prelude_globs)):
            return f"the commit edits the BUILD file prelude {path}"
        if os.path.basename(path) == "__init__.py":
            return f"the commit edits {path} (modules below it may depend on it)"
    return None


_READ_ALONE = (PythonSourceField, PythonTestSourceField, ResourceSourceField)


def unsafe_owner(path: str, owners: tuple[Target, ...]) -> str | None:
    """Why the owners of a modified file do not make it a file only its own targets read, or None."""
    if not owners:
        return f"the commit edits {path}, which no target owns (it may be configuration)"
    for owner in owners:
        if not any(owner.has_field(field) for field in _READ_ALONE):
            return f"the commit edits {path}, a source of the `{owner.alias}` target {owner.address.spec}"
    return None


def rules():
    return collect_rules()

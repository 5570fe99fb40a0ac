"""The `export-dists` goal: gather the export, write it atomically (or explain one dist)."""
from __future__ import annotations

import os
import shutil
import subprocess
import logging
import time
from collections import Counter
from pathlib import Path, PurePath

from pants.base.build_root import BuildRoot
from pants.build_graph.address import Address, AddressInput
from pants.core.util_rules.distdir import DistDir
from pants.engine.console import Console
from pants.engine.fs import PathGlobs
from pants.engine.goal import Goal
from pants.engine.rules import collect_rules, goal_rule
from pants.engine.target import Targets
from pants.engine.internals.graph import OwnersRequest
from pants.engine.internals.native_engine import AddressParseException
from pants.util.frozendict import FrozenDict

from export_dists.cycles import dist_cycles
from export_dists import skip_paths
from export_dists.dists import DistIdentity, DistKind, EdgeKind, NamingSettings, generator_address
from export_dists.engine import concurrently, glob_paths, implicitly, owners
from export_dists.environments import is_environment
from export_dists.export import build_export
from export_dists.export_types import Export, ExportRequest, PlannedDist
from export_dists.importable import UNIMPORTABLE, unimportable_files
from export_dists_core.layout import earlier_dists, export_files, link_sources, write_export
from export_dists_core.staging import StagedExport
from export_dists_core.naming import normalize
from export_dists_core.versions import explain_version, versions_summary
from export_dists.subsystem import ExportDistsSubsystem, ThirdPartyPins, VersionScheme
from export_dists.toplevel import stray_top_level, top_level_names
from export_dists.url_requirements import url_of


logger = logging.getLogger(__name__)


class ExplainError(Exception):
    pass


class ExportDists(Goal):
    subsystem_cls = ExportDistsSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


def output_root(subsystem: ExportDistsSubsystem, build_root: BuildRoot, dist_dir: DistDir) -> Path:
    configured = subsystem.output_dir
    if configured:
        path = Path(os.path.expanduser(configured))
        return path if path.is_absolute() else Path(build_root.path) / path
    return Path(build_root.path) / dist_dir.relpath / "export-dists"


def _address_of(wanted: str) -> Address | None:
    """`src/python/a/b` as the address it is short for (`src/python/a/b:b`), if it is an address."""
    try:
        return AddressInput.parse(wanted, description_of_origin="--export-dists-explain").dir_to_address()
    except AddressParseException:
        return None  # maybe a dist name


def _left_out_by_pattern(export: Export) -> str:
    """`24 targets (**/tests: 22, **/fixtures: 2)`, or "" when no pattern left a target out."""
    counts = Counter(i.skipped_by for i in export.skipped if i.skipped_by)
    if not counts:
        return ""
    total = sum(counts.values())
    return f"{total} target{'' if total == 1 else 's'} (" + ", ".join(f"{p}: {n}" for p, n in sorted(counts.items())) + ")"


def _skipped(export: Export, wanted: str) -> DistIdentity | None:
    """The target `wanted` names if the export left it out (named by the specs, or a dependency)."""
    wanted_address = _address_of(wanted)
    candidates = [*export.skipped, *(d.identity for p in export.planned for d in p.plan.not_exportable)]
    for identity in candidates:
        if identity.address == wanted_address or wanted in (identity.address.spec, str(identity.address)):
            return identity
    return None


def _find(export: Export, wanted: str) -> PlannedDist:
    wanted_project = normalize(wanted)
    wanted_address = _address_of(wanted)
    for planned in export.planned:
        identity = planned.plan.identity
        if identity.address == wanted_address or wanted in (identity.address.spec, str(identity.address)) or (
            identity.name and normalize(identity.name) == wanted_project
        ):
            return planned
    # A file address or a generated target: explain the dist that owns it.
    for planned in export.planned:
        if any(wanted in (f.path, f.owner.spec) for f in planned.plan.files):
            return planned
    names = ", ".join(sorted(p.plan.identity.name or "" for p in export.planned)[:20])
    raise ExplainError(
        f"--explain={wanted!r} is neither the address nor the dist name of a target in the given "
        f"specs (or their dependencies). Pass the specs that include it, e.g. "
        f"`pants export-dists --explain={wanted} ::`. Dists here: {names}"
    )


async def _explain(console: Console, export: Export, wanted: str) -> None:
    out = console.print_stdout
    skipped = _skipped(export, wanted)
    if skipped is not None:
        out(f"target:   {skipped.address.spec}  ({skipped.alias})")
        out(f"not exported: {skipped.not_exportable_because}")
        return
    planned = _find(export, wanted)
    plan = planned.plan
    out(f"dist:     {plan.identity.name}")
    origin = planned.origin
    out(
        explain_version(
            planned.version or export.info.version,
            origin=origin.sha if origin else None,
            exported=export.info.sha,
            dirty=export.info.dirty,
        )
    )
    if planned.fingerprint:
        out(f"content:  {planned.fingerprint}")
    out(f"target:   {plan.identity.address.spec}  ({plan.identity.alias})")
    out(f"python:   {plan.requires_python or '(no Requires-Python)'}")
    out(f"top-level names in site-packages: {', '.join(top_level_names(plan.files)) or '(none)'}")
    stray = stray_top_level(plan)
    if stray:
        out(f"WARNING: files at the top of site-packages: {', '.join(stray.names)}")
        if stray.refused:
            out(f"  refused unless the target sets export_dist_allow_top_level=True: {', '.join(stray.refused)}")
    for cycle in dist_cycles({p.plan.identity.address: p.plan for p in export.planned}):
        if plan.identity.address in cycle.members:
            others = ", ".join(a.spec for a in cycle.members if a != plan.identity.address)
            out(f"WARNING: in a dependency cycle of {cycle.size} dists (installing one installs all): {others}")
    unimportable = unimportable_files(f.wheel_path for f in plan.files) if plan.identity.kind == DistKind.PYTHON else ()
    if unimportable:
        out(f"WARNING: {len(unimportable)} Python files no import can reach:")
        for unimportable_file in unimportable:
            out(f"  {unimportable_file.wheel_path}  ({unimportable_file.why})")
        out(f"  {UNIMPORTABLE.fix}")
    left_out = _left_out_by_pattern(export)
    if left_out:
        out(f"left out of these specs by [export-dists].skip_paths: {left_out}")
    if is_environment(plan):
        out(
            f"environment: {len(plan.first_party)} first-party dists (the closure of its dependencies) "
            "and their third-party requirements; no files"
        )
    out("")
    out(f"files ({len(plan.files)}):")
    for owned in plan.files:
        out(f"  {owned.wheel_path}    <- {owned.path}  [{owned.owner.spec}]")
    out("")
    out(f"Requires-Dist ({len(planned.requirements)}):")
    for line in planned.requirements:
        if line.mapped_from:
            out(f"  {line.text}    (instead of {line.mapped_from}: [export-dists].url_requirement_map)")
        elif not line.first_party and url_of(line.text):
            out(f"  {line.text}    (a URL requirement: uv needs it in -c constraints.txt)")
        else:
            out(f"  {line.text}")
        for edge in line.edges:
            out(f"      {edge.kind.value}: {edge.source.spec} -> {edge.target.spec}")
    if plan.excluded:
        out("")
        out("excluded dependencies:")
        for edge in plan.excluded:
            out(f"  {EdgeKind.EXCLUDED.value}: {edge.source.spec} -> !{edge.target.spec}")
    if plan.not_exportable:
        out("")
        out("dependencies left out (not exportable):")
        for dep in plan.not_exportable:
            out(f"  {dep.identity.address.spec} ({dep.identity.alias}): {dep.identity.not_exportable_because}")

    # Files beside this dist's files that no exported target owns are not in any wheel: say so.
    directories = sorted({str(PurePath(f.path).parent) for f in plan.files})
    neighbours = await glob_paths(PathGlobs([f"{d}/*" for d in directories]))
    candidates = [p for p in neighbours.files if os.path.basename(p) not in ("BUILD", "BUILD.pants")]
    owned_paths = {f.path for p in export.planned for f in p.plan.files}
    unowned = sorted(p for p in candidates if p not in owned_paths)
    if unowned:
        owners_of = await concurrently(owners(OwnersRequest((path,))) for path in unowned)
        out("")
        out("WARNING: files beside this dist that are in no exported dist:")
        for path, found in zip(unowned, owners_of):
            owner_text = ", ".join(o.spec for o in found) if found else "no target"
            out(f"  {path}  (owned by {owner_text})")


def _head(build_root: str) -> str | None:
    """The commit checked out (its export's directory name when clean), or None."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        # A full path, no cwd and close_fds=False let subprocess spawn git (posix_spawn) instead
        # of forking pantsd, whose page tables alone take a fork 0.05-0.2 s to copy at 3,000-10,000
        # targets, the GIL held.
        found = subprocess.run(
            [git, "-C", build_root, "--no-optional-locks", "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True, text=True, timeout=30, check=False, close_fds=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() or None


@goal_rule
async def export_dists(
    console: Console,
    targets: Targets,
    subsystem: ExportDistsSubsystem,
    build_root: BuildRoot,
    dist_dir: DistDir,
) -> ExportDists:
    started = time.monotonic()
    skip_paths.check(tuple(subsystem.skip_paths))
    roots = tuple(sorted({generator_address(t.address) for t in targets}))
    if not roots:
        console.print_stderr(
            "No targets given: pass specs, e.g. `pants export-dists ::` or `pants export-dists src/python/a/b`."
        )
        return ExportDists(exit_code=1)
    out_root = output_root(subsystem, build_root, dist_dir)
    request = ExportRequest(
        roots=roots,
        settings=NamingSettings(
            namespace=subsystem.namespace,
            strip_source_roots=subsystem.strip_source_roots,
            include_test_utils=subsystem.include_test_utils,
            typed=subsystem.typed,
            skip_paths=tuple(subsystem.skip_paths),
        ),
        version_template=subsystem.version_template,
        # --explain writes nothing, and is most useful while editing BUILD files.
        allow_dirty=subsystem.allow_dirty or bool(subsystem.explain),
        pin_from_lockfiles=subsystem.third_party_pins == ThirdPartyPins.LOCKFILE,
        unexportable=subsystem.unexportable_dependencies,
        output_dir=str(out_root),
        version_scheme=subsystem.version_scheme,
        url_requirement_map=FrozenDict(subsystem.url_requirement_map),
        refuse_top_level=not subsystem.explain,
        warning_examples=subsystem.warning_examples,
        reuse_plans=subsystem.reuse_plans,
    )
    # With versions by content an export keeps all but a few dists of the one before: their
    # directories and links are staged from it on a thread while the engine plans (staging.py).
    staging = (
        StagedExport.start(out_root, lambda: _head(build_root.path))
        if request.version_scheme == VersionScheme.CONTENT and not subsystem.explain
        else None
    )
    try:
        planning = time.monotonic()
        export = await build_export(request, **implicitly())
        planned = time.monotonic()
        if subsystem.explain:
            await _explain(console, export, subsystem.explain)
            return ExportDists(exit_code=0)
        if not export.dists:
            console.print_stderr("Nothing to export: the specs name no python_sources or resources targets.")
            return ExportDists(exit_code=1)

        projects = {d.project for d in export.dists}
        kept = earlier_dists(out_root / export.info.directory_name, export.info, besides=projects)
        every = (*export.dists, *kept)
        staged = staging.take(every) if staging else None
        # Unchanged wheels are hard-linked from the newest earlier exports: a store holds them once.
        unstaged = [d for d in every if not (staged and staged.holds(d))]
        links = link_sources(out_root, export.info.directory_name, unstaged)
        result = write_export(out_root, export.info.directory_name, export_files(export.info, every), links, staged)
    finally:
        if staging:
            staging.close()
    # At debug for this logger and export.py's (README says how; bench/scale_bench.py reads both):
    # the planning is the engine's work and the plan rule's (export.py logs the rule's steps).
    logger.debug(
        f"export-dists timings: planning {planned - planning:.2f} s, then the write {time.monotonic() - planned:.2f} s"
        + (f" (staged ahead in {staging.seconds:.2f} s on a thread, waited for {staging.waited:.2f} s)" if staging else "")
    )
    shown = os.path.relpath(result.path, build_root.path)
    if shown.startswith(".."):
        shown = str(result.path)
    extra = len(export.dists) - len(export.requested)
    deps_note = f" ({len(export.requested)} requested + {extra} first-party dependencies)" if extra else ""
    state = "wrote" if result.written else "unchanged (already exported)"
    if kept:
        state += f" (with {len(kept)} more dists of an earlier export of this commit)"
    if result.linked:
        state += f" ({result.linked_wheels} unchanged wheels linked from earlier exports)"
    versions = versions_summary([d.version for d in export.dists], export.info.version)
    left_out = _left_out_by_pattern(export)
    console.print_stderr(
        f"export-dists: {len(export.dists)} dists{deps_note} {versions} "
        f"(commit {export.info.sha[:12]}{', DIRTY' if export.info.dirty else ''}) "
        f"{state}: {shown} [{time.monotonic() - started:.1f}s]"
        + (f"; left out by [export-dists].skip_paths: {left_out}" if left_out else "")
    )
    console.print_stdout(str(result.path))
    return ExportDists(exit_code=0)


def rules():
    return collect_rules()

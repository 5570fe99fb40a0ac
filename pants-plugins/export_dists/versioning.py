"""The version of an export, from git: `0.<first-parent count>+g<short sha>` by default."""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass

from export_dists.engine import by_name, run_process, run_process_or_raise
from export_dists_core.versions import VersionTemplateError, fill_template, shows_commit
from export_dists_core.history import HistoryCommit, history_arguments, parse_history

from pants.base.build_root import BuildRoot
from pants.core.util_rules.distdir import DistDir
from pants.core.util_rules.system_binaries import BashBinary
from pants.engine.process import Process, ProcessCacheScope
from pants.engine.rules import collect_rules, rule
from pants.util.logging import LogLevel
from pants.util.strutil import softwrap
from pants.vcs.git import MaybeGitBinary

logger = logging.getLogger(__name__)

# Paths Pants itself writes inside a build root: never a reason to call a tree dirty. The dist
# directory ([GLOBAL].pants_distdir) and the export's own output directory join them.
_PANTS_OUTPUTS = (".pants.d", ".pids", ".pants.workdir.file_lock")


class ExportVersionError(Exception):
    pass


@dataclass(frozen=True)
class ExportCommitRequest:
    allow_dirty: bool
    # Where the export is written (absolute, or relative to the build root): a previous export
    # there is no uncommitted change.
    output_dir: str | None = None


@dataclass(frozen=True)
class ExportCommit:
    sha: str
    count: int
    commit_time: str  # ISO 8601, committer date
    commit_epoch: int
    dirty: bool
    branches: tuple[str, ...]
    tags: tuple[str, ...]
    # Uncommitted changes (dirty trees only): paths relative to the build root.
    changed: tuple[str, ...] = ()

    @property
    def short_sha(self) -> str:
        return self.sha[:12]


@dataclass(frozen=True)
class CommitVersion:
    """What a version is made of: a first-parent commit, its count, and whether files differ from it."""

    sha: str
    count: int
    dirty: bool = False

    @property
    def short_sha(self) -> str:
        return self.sha[:12]


def render_version(template: str, commit: ExportCommit | CommitVersion, *, warn: bool = True) -> str:
    """Fill the version template; a dirty export gets `.dirty` at the end of its local label."""
    try:
        version = fill_template(template, sha=commit.sha, count=commit.count, dirty=commit.dirty)
    except VersionTemplateError as e:
        raise ExportVersionError(f"[export-dists].version_template = {e}") from None
    if warn and not shows_commit(version, commit.sha):
        logger.warning(
            f"The export version {version} does not show the commit sha {commit.short_sha}: add "
            "{short_sha} to [export-dists].version_template so installed dists show their commit."
        )
    return version


def pants_outputs(build_root: str, dist_dir: DistDir, output_dir: str | None) -> tuple[str, ...]:
    """Where Pants and this export write, as absolute paths: the export's output directory may be
    inside the build root, beside it in the same repository, or anywhere else."""
    root = os.path.realpath(build_root)
    paths = {
        os.path.realpath(os.path.join(root, path))
        for path in (*_PANTS_OUTPUTS, str(dist_dir.relpath), *([output_dir] if output_dir else []))
    }
    return tuple(sorted(p for p in paths if p != root and not root.startswith(p + os.sep)))


# One process reads everything the export needs from git: Pants starts each process in its own
# sandbox, which costs more than the git commands themselves.
_READ_COMMIT = """
set -u
git="$1"; root="$2"; shift 2
# The remaining arguments are absolute paths whose changes do not count. git applies them as
# pathspecs from the top of the work tree: it knows an untracked `build/` holding only `build/out/`
# is clean, whether the build root is the top or below it. Paths outside the work tree git does
# not see anyway.
head="$("$git" -C "$root" rev-parse --verify HEAD 2>&1)" || { echo "$head" >&2; exit 3; }
echo "$head"
top="$("$git" -C "$root" rev-parse --show-toplevel)"
excluded=(':/')
for path in "$@"; do
  case "$path" in "$top"/*) excluded+=(":(top,exclude,literal)${path#"$top"/}") ;; esac
done
"$git" -C "$root" rev-parse --is-shallow-repository
"$git" -C "$root" rev-list --first-parent --count "$head"
"$git" -C "$root" show -s --format='%cI %ct' "$head"
echo '--branches'
"$git" -C "$root" for-each-ref --points-at "$head" --format='%(refname:short)' refs/heads
echo '--tags'
"$git" -C "$root" for-each-ref --points-at "$head" --format='%(refname:short)' refs/tags
echo '--status'
status="$("$git" -C "$root" --no-optional-locks status --porcelain --untracked-files=normal -- "${excluded[@]}")"
[ -n "$status" ] && printf '%s\n' "$status"
if [ -n "$status" ]; then
  # Which dists are dirty: every changed path (each file of an untracked directory, both sides of
  # a rename), relative to the build root, NUL-separated, after the build root's prefix.
  echo '--changed'
  "$git" -C "$root" rev-parse --show-prefix
  "$git" -C "$root" --no-optional-locks status --porcelain -z --no-renames --untracked-files=all -- . "${excluded[@]}"
fi
exit 0
"""


def _changed_paths(section: str) -> tuple[str, ...]:
    """The `--changed` section: the build root's prefix in the work tree, then `git status -z`."""
    prefix, _, entries = section.partition("\n")
    paths = set()
    for entry in entries.split("\0"):
        path = entry[3:]
        if len(entry) > 3 and path.startswith(prefix):
            paths.add(path[len(prefix) :])
    return tuple(sorted(paths))


def _sections(output: str) -> tuple[list[str], dict[str, list[str]]]:
    """The script's output: the four header lines, then the `--name` sections."""
    output = output.partition("\n--changed\n")[0]
    lines = output.splitlines()
    header: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] = header
    for line in lines:
        if line in ("--branches", "--tags", "--status"):
            current = sections.setdefault(line[2:], [])
        else:
            current.append(line)
    return header, sections


@by_name
@rule(desc="Read the commit to export from git")
async def export_commit(
    request: ExportCommitRequest,
    build_root: BuildRoot,
    dist_dir: DistDir,
    maybe_git: MaybeGitBinary,
    bash: BashBinary,
) -> ExportCommit:
    if maybe_git.git_binary is None:
        raise ExportVersionError(
            "export-dists derives versions from git, and no `git` binary was found on the PATH: "
            "install git and re-run."
        )
    result = await run_process(
        Process(
            argv=(
                bash.path,
                "-c",
                _READ_COMMIT,
                "read-commit",
                maybe_git.git_binary.path,
                build_root.path,
                *pants_outputs(build_root.path, dist_dir, request.output_dir),
            ),
            description="Read the commit to export from git",
            # Git state changes outside the engine's view: read it afresh in every run.
            cache_scope=ProcessCacheScope.PER_SESSION,
            level=LogLevel.DEBUG,
        ),
    )
    if result.exit_code == 3:
        raise ExportVersionError(
            softwrap(
                f"""
                export-dists needs a git checkout with at least one commit at {build_root.path} to
                derive versions, and git said: {result.stderr.decode().strip()}. Run
                `git init && git add -A && git commit -m "..."` (or export from a checkout).
                """
            )
        )
    if result.exit_code != 0:
        raise ExportVersionError(
            f"Reading the commit from git at {build_root.path} failed: {result.stderr.decode().strip()}"
        )
    stdout = result.stdout.decode("utf-8", "surrogateescape")
    header, sections = _sections(stdout)
    changed = _changed_paths(stdout.partition("\n--changed\n")[2]) if "\n--changed\n" in stdout else ()
    sha, shallow, count, when = header[:4]
    if shallow.strip() == "true":
        raise ExportVersionError(
            softwrap(
                f"""
                {build_root.path} is a shallow clone: the first-parent commit count that versions
                are made of would be wrong. Run `git fetch --unshallow` (in CI: clone with
                `fetch-depth: 0`) and re-run.
                """
            )
        )
    changes = [line for line in sections.get("status", []) if line.strip()]
    if changes and not request.allow_dirty:
        shown = "\n".join(f"  {line}" for line in changes[:10])
        more = f"\n  ... and {len(changes) - 10} more" if len(changes) > 10 else ""
        raise ExportVersionError(
            softwrap(
                f"""
                The work tree at {build_root.path} has uncommitted changes, so an export would not
                match commit {sha[:12]}. Commit or stash them, or pass --export-dists-allow-dirty
                to export anyway (the version is then marked `.dirty`).
                """
            )
            + f"\n\n{shown}{more}"
        )
    time_iso, time_epoch = when.split()
    return ExportCommit(
        sha=sha.strip(),
        count=int(count),
        commit_time=time_iso,
        commit_epoch=int(time_epoch),
        dirty=bool(changes),
        branches=tuple(sorted(b for b in sections.get("branches", []) if b)),
        tags=tuple(sorted(t for t in sections.get("tags", []) if t)),
        changed=changed,
    )


@dataclass(frozen=True)
class CommitDiffRequest:
    before: str  # two commits: their diff never changes, so the engine may cache it for good
    after: str


@dataclass(frozen=True)
class CommitDiff:
    """`git diff --name-status -z --no-renames` between two commits, paths relative to the build
    root (changes outside it left out); None when git could not diff them (one is unknown here)."""

    output: str | None


@by_name
@rule(desc="Read what a commit changed from git")
async def commit_diff(request: CommitDiffRequest, build_root: BuildRoot, maybe_git: MaybeGitBinary) -> CommitDiff:
    assert maybe_git.git_binary is not None  # export_commit checked it
    result = await run_process(
        Process(
            argv=(
                maybe_git.git_binary.path, "-C", build_root.path, "diff", "--relative", "--no-renames",
                "--no-ext-diff", "--name-status", "-z", request.before, request.after, "--",
            ),
            description=f"Read what changed from {request.before[:12]} to {request.after[:12]} from git",
            level=LogLevel.DEBUG,
        )
    )
    return CommitDiff(result.stdout.decode("utf-8", "surrogateescape") if result.exit_code == 0 else None)


@dataclass(frozen=True)
class HistoryRequest:
    sha: str  # a commit: its history never changes, so the engine may cache the walk for good


@dataclass(frozen=True)
class FirstParentHistory:
    commits: tuple[HistoryCommit, ...]  # newest first, starting at the requested commit


def _history_process(git: str, build_root: str, revisions: str) -> Process:
    return Process(
        argv=(git, *history_arguments(build_root, revisions)),
        description=f"Read the first-parent history {revisions[:12]}... from git",
        level=LogLevel.DEBUG,
    )


# Histories read in this process (pantsd keeps them between runs), newest last: the next commit's
# history is its new commits on top of one of these, so a run after one commit reads one commit
# from git instead of the whole history. A sha names its history for good, so this is a cache,
# never a source of truth: what it gives equals a full read.
_RECENT: OrderedDict[tuple[str, str], tuple[HistoryCommit, ...]] = OrderedDict()
_RECENT_MAX = 4


def _remember(key: tuple[str, str], commits: tuple[HistoryCommit, ...]) -> None:
    _RECENT[key] = commits
    _RECENT.move_to_end(key)
    while len(_RECENT) > _RECENT_MAX:
        _RECENT.popitem(last=False)


@by_name
@rule(desc="Read the first-parent history from git")
async def first_parent_history(
    request: HistoryRequest, build_root: BuildRoot, maybe_git: MaybeGitBinary
) -> FirstParentHistory:
    assert maybe_git.git_binary is not None  # export_commit checked it
    git = maybe_git.git_binary.path
    key = (build_root.path, request.sha)
    if key in _RECENT:
        return FirstParentHistory(_RECENT[key])
    known = next((k for k in reversed(_RECENT) if k[0] == build_root.path), None)
    if known is not None:
        segment = await run_process(_history_process(git, build_root.path, f"{known[1]}..{request.sha}"))
        commits = parse_history(segment.stdout) if segment.exit_code == 0 else ()
        # Only when the known commit is on this one's first-parent line, right below the new ones.
        if commits and commits[-1].parent == known[1]:
            history = commits + _RECENT[known]
            _remember(key, history)
            return FirstParentHistory(history)
    result = await run_process_or_raise(_history_process(git, build_root.path, request.sha))
    history = parse_history(result.stdout)
    _remember(key, history)
    return FirstParentHistory(history)


def rules():
    return collect_rules()

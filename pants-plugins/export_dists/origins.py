"""Where each dist's content appeared: its inputs, one first-parent history walk, its origin commit.

A dist's version names the newest first-parent commit at or before the exported one that changed
any input of its first-party closure (version_scheme = "content"). An input is a path whose change
can change the wheel: the files a closure member ships, any path its `sources` globs match (so an
added or deleted file counts), the BUILD files of its directory and every directory above it
(`__defaults__`), the `__init__.py` files above its files (Pants infers dependencies on them), any
file that could provide a module it imports (so a deleted module it imported counts, though the
dependency is gone at HEAD), and repository-wide inputs (Pants configuration, the definitions of
third-party requirements, lockfiles used for pins, the plugin's own code when it lives in the
repository). Counting too much only bumps a version; counting too little would give two different
wheels one version, so every doubt counts.
"""
from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from pants.engine.internals.native_engine import FilespecMatcher

# Paths at the build root that shape every wheel: Pants' configuration (namespace, source roots,
# interpreter constraints, inference settings, build file patterns ...).
REPOSITORY_WIDE_GLOBS = ("pants.toml", "pants.*.toml", ".pants.rc", "pants.ini")
_PYTHON_SUFFIXES = (".py", ".pyi")
_INIT_FILES = ("__init__.py", "__init__.pyi")
T = TypeVar("T")


@dataclass(frozen=True)
class DistInputs:
    """The inputs of one dist alone (not its closure), as paths relative to the build root."""

    files: tuple[str, ...]  # what it ships
    includes: tuple[str, ...]  # its sources globs
    excludes: tuple[str, ...]
    directories: tuple[str, ...]  # the directories of its BUILD files (its targets' spec paths)
    imports: tuple[str, ...]  # the modules its files import


@dataclass(frozen=True)
class HistoryCommit:
    sha: str
    epoch: int
    time: str  # ISO 8601 committer date
    paths: tuple[str, ...]  # changed against its first parent (both sides of a move)
    parent: str = ""  # its first parent ("" for a root commit)


# What `parse_history` reads: `git log --name-only -z --format=...` with this format.
HISTORY_FORMAT = "--format=%x1e%H%x1f%P%x1f%ct%x1f%cI"


def parse_history(output: bytes) -> tuple[HistoryCommit, ...]:
    """The output of `git log --name-only -z` with HISTORY_FORMAT: newest first."""
    commits = []
    for record in output.decode("utf-8", "surrogateescape").split("\x1e")[1:]:
        header, _, rest = record.partition("\0")
        sha, parents, epoch, time = header.split("\x1f")
        paths = tuple(p for p in rest.lstrip("\n").split("\0") if p)
        parent = parents.split()[0] if parents.split() else ""
        commits.append(HistoryCommit(sha.strip(), int(epoch), time.strip(), paths, parent))
    return tuple(commits)


def _ancestors(directory: str) -> Iterator[str]:
    """`a/b/c` -> `a/b/c`, `a/b`, `a`, `` (the build root)."""
    while True:
        yield directory
        if not directory:
            return
        directory = directory.rpartition("/")[0]


def _module_names(path: str) -> Iterator[str]:
    """Every module a path could be, whatever its source root: `src/a/b.py` -> `src.a.b`, `a.b`, `b`."""
    stem = None
    for suffix in _PYTHON_SUFFIXES:
        if path.endswith(suffix):
            stem = path[: -len(suffix)]
            break
    if stem is None:
        return
    parts = stem.split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    for start in range(len(parts)):
        yield ".".join(parts[start:])


class InputIndex:
    """Which dists a changed path is an input of, for many dists and many paths at once."""

    def __init__(
        self,
        inputs: Mapping[str, DistInputs],
        *,
        build_patterns: Sequence[str],
        repository_wide: Iterable[str] = (),
        repository_wide_directories: Iterable[str] = (),
        repository_wide_trees: Iterable[str] = (),
        excluded: Iterable[str] = (),
    ) -> None:
        self.keys = tuple(inputs)
        self._build_file = re.compile("|".join(fnmatch.translate(p) for p in build_patterns) or "(?!)")
        self._exact: dict[str, set[str]] = {}
        self._build_dirs: dict[str, set[str]] = {}
        # Glob base directory -> the dists whose globs start there; matchers are compiled when a
        # path first needs one (most never do: an exact path answers first).
        self._glob_dirs: dict[str, list[str]] = {}
        self._globs: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._matchers: dict[str, FilespecMatcher] = {}
        self._answers: dict[str, frozenset[str]] = {}
        self._modules: dict[str, set[str]] = {}
        self._repository_wide = set(repository_wide)
        # Files directly in these directories (third-party requirement definitions).
        self._repository_wide_dirs = set(repository_wide_directories)
        # Anything below these directories (the plugin's own code, when it is in the repository).
        self._repository_wide_trees = tuple(t.rstrip("/") + "/" for t in repository_wide_trees)
        # Never repository-wide through their directory (lockfiles, unless third-party pins use them).
        self._excluded = set(excluded)
        # Directory -> the dists with a file below it (`__init__.py` there is an input of them).
        self._init_dirs: dict[str, set[str]] = {}
        for key, dist in inputs.items():
            for path in dist.files:
                self._exact.setdefault(path, set()).add(key)
            for directory in {path.rpartition("/")[0] for path in dist.files}:
                for ancestor in _ancestors(directory):
                    self._init_dirs.setdefault(ancestor, set()).add(key)
            for directory in dist.directories:
                for ancestor in _ancestors(directory):
                    self._build_dirs.setdefault(ancestor, set()).add(key)
            if dist.includes:
                self._globs[key] = (dist.includes, dist.excludes)
                for base in {_glob_base(g) for g in dist.includes}:
                    self._glob_dirs.setdefault(base, []).append(key)
            for module in dist.imports:
                # `from a.b import c` is recorded as `a.b.c`, which `a/b.py` may provide.
                self._modules.setdefault(module, set()).add(key)
                parent = module.rpartition(".")[0]
                if parent:
                    self._modules.setdefault(parent, set()).add(key)

    def is_repository_wide(self, path: str) -> bool:
        if path in self._repository_wide:
            return True
        if posixpath.dirname(path) in self._repository_wide_dirs and path not in self._excluded:
            return True
        if "/" not in path and any(fnmatch.fnmatchcase(path, g) for g in REPOSITORY_WIDE_GLOBS):
            return True
        return path.startswith(self._repository_wide_trees)

    def dists_of(self, path: str) -> frozenset[str]:
        """The dists `path` is an input of (not through their closures); remembered per path, as
        the same files change again and again along a history."""
        answer = self._answers.get(path)
        if answer is None:
            answer = self._answers[path] = frozenset(self._dists_of(path))
        return answer

    def _dists_of(self, path: str) -> set[str]:
        found: set[str] = set(self._exact.get(path, ()))
        directory, _, name = path.rpartition("/")
        if self._build_file.match(name):
            found |= self._build_dirs.get(directory, set())
        if name in _INIT_FILES:
            found |= self._init_dirs.get(directory, set())
        for ancestor in _ancestors(directory):
            for key in self._glob_dirs.get(ancestor, ()):
                if key not in found and self._matcher(key).matches([path]):
                    found.add(key)
        for module in _module_names(path):
            found |= self._modules.get(module, set())
        return found

    def _matcher(self, key: str) -> FilespecMatcher:
        matcher = self._matchers.get(key)
        if matcher is None:
            includes, excludes = self._globs[key]
            matcher = self._matchers[key] = FilespecMatcher(list(includes), list(excludes))
        return matcher


def _glob_base(glob: str) -> str:
    """The directory a glob's matches lie under: `a/b/*.py` -> `a/b`, `a/**/x.py` -> `a`."""
    parts = glob.split("/")[:-1]
    base = []
    for part in parts:
        if any(c in part for c in "*?["):
            break
        base.append(part)
    return "/".join(base)


@dataclass(frozen=True)
class Condensed:
    """A dependency graph's strongly connected components, dependencies first (cycles allowed)."""

    component: Mapping[str, int]  # key -> its component's index in `members`
    members: tuple[tuple[str, ...], ...]  # every dependency of a component comes before it
    successors: tuple[frozenset[int], ...]  # the components each one depends on (not itself)

    def fold(self, own: Mapping[str, T], combine: Callable[[Iterable[T]], T]) -> dict[str, T]:
        """Per key, `combine` over the `own` values of its whole closure, in O(nodes + edges)."""
        values: list[T] = []
        for index, members in enumerate(self.members):
            values.append(combine([*(own[m] for m in members), *(values[s] for s in self.successors[index])]))
        return {key: values[index] for key, index in self.component.items()}


def condense(dependencies: Mapping[str, Iterable[str]]) -> Condensed:
    """Tarjan's algorithm, iteratively (a chain of thousands of dists would overflow recursion)."""
    graph = {key: [d for d in deps if d in dependencies] for key, deps in dependencies.items()}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[tuple[str, ...]] = []
    component: dict[str, int] = {}
    for root in graph:
        if root in order:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                order[node] = low[node] = len(order)
                stack.append(node)
                on_stack.add(node)
            edges = graph[node]
            if child < len(edges):
                work.append((node, child + 1))
                dep = edges[child]
                if dep not in order:
                    work.append((dep, 0))
                elif dep in on_stack:
                    low[node] = min(low[node], order[dep])
                continue
            if low[node] == order[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = len(components)
                    members.append(member)
                    if member == node:
                        break
                components.append(tuple(sorted(members)))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    successors = tuple(
        frozenset(component[d] for m in members for d in graph[m]) - {index}
        for index, members in enumerate(components)
    )
    return Condensed(component, tuple(components), successors)


def closures(dependencies: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """Each key's transitive dependencies, itself included (for tests and small graphs)."""
    return condense(dependencies).fold({k: frozenset([k]) for k in dependencies}, lambda xs: frozenset().union(*xs))


@dataclass(frozen=True)
class Origins:
    """Per dist: the index in the history (0 = the exported commit) of the commit its content is from."""

    index: Mapping[str, int]
    dirty: frozenset[str]


def find_origins(
    history: Sequence[HistoryCommit],
    index: InputIndex,
    graph: Condensed,
    *,
    changed: Sequence[str] = (),
) -> Origins:
    """Walk the history newest first until every dist has met a change of one of its own inputs.

    A dist's origin is the newest commit that changed an input of any dist in its closure, or a
    repository-wide input. Paths in `changed` (uncommitted changes) make the dists they are inputs
    of, and every dist whose closure holds one, dirty.
    """
    own: dict[str, int] = {}
    wide: int | None = None
    pending = set(index.keys)
    oldest = max(len(history) - 1, 0)
    for position, commit in enumerate(history):
        if not pending and wide is not None:
            break
        for path in commit.paths:
            if wide is None and index.is_repository_wide(path):
                wide = position
            if pending:
                for key in index.dists_of(path) & pending:
                    own[key] = position
                    pending.discard(key)
    # Inputs no commit changed (history ends before them, a dist with no files): the oldest commit.
    for key in pending:
        own[key] = oldest
    wide_position = oldest if wide is None else wide
    origins = graph.fold(own, lambda xs: min(xs, default=wide_position))
    origins = {key: min(position, wide_position) for key, position in origins.items() if key in own}

    own_dirty: set[str] = set()
    dirty_wide = False
    for path in changed:
        dirty_wide = dirty_wide or index.is_repository_wide(path)
        own_dirty |= index.dists_of(path)
    dirty_of = graph.fold({key: key in own_dirty for key in graph.component}, any)
    dirty = frozenset(key for key in index.keys if dirty_wide or dirty_of.get(key, False))
    return Origins(origins, dirty)

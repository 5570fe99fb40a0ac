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
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Sequence

from pants.engine.internals.native_engine import FilespecMatcher

# Paths at the build root that shape every wheel: Pants' configuration (namespace, source roots,
# interpreter constraints, inference settings, build file patterns ...).
REPOSITORY_WIDE_GLOBS = ("pants.toml", "pants.*.toml", ".pants.rc", "pants.ini")
_PYTHON_SUFFIXES = (".py", ".pyi")


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


def parse_history(output: bytes) -> tuple[HistoryCommit, ...]:
    """`git log --name-only -z --format=%x1e%H%x1f%ct%x1f%cI`: newest first."""
    commits = []
    for record in output.decode("utf-8", "surrogateescape").split("\x1e")[1:]:
        header, _, rest = record.partition("\0")
        sha, epoch, time = header.split("\x1f")
        paths = tuple(p for p in rest.lstrip("\n").split("\0") if p)
        commits.append(HistoryCommit(sha.strip(), int(epoch), time.strip(), paths))
    return tuple(commits)


def _ancestors(directory: str) -> Iterator[str]:
    """`a/b/c` -> `a/b/c`, `a/b`, `a`, `` (the build root)."""
    while True:
        yield directory
        if not directory:
            return
        directory = posixpath.dirname(directory)


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
        self._build_patterns = tuple(build_patterns)
        self._exact: dict[str, set[str]] = {}
        self._build_dirs: dict[str, set[str]] = {}
        self._glob_dirs: dict[str, list[tuple[str, FilespecMatcher]]] = {}
        self._modules: dict[str, set[str]] = {}
        self._repository_wide = set(repository_wide)
        # Files directly in these directories (third-party requirement definitions).
        self._repository_wide_dirs = set(repository_wide_directories)
        # Anything below these directories (the plugin's own code, when it is in the repository).
        self._repository_wide_trees = tuple(t.rstrip("/") + "/" for t in repository_wide_trees)
        # Never repository-wide through their directory (lockfiles, unless third-party pins use them).
        self._excluded = set(excluded)
        for key, dist in inputs.items():
            for path in dist.files:
                self._exact.setdefault(path, set()).add(key)
                for directory in _ancestors(posixpath.dirname(path)):
                    for suffix in _PYTHON_SUFFIXES:
                        self._exact.setdefault(posixpath.join(directory, "__init__" + suffix), set()).add(key)
            for directory in dist.directories:
                for ancestor in _ancestors(directory):
                    self._build_dirs.setdefault(ancestor, set()).add(key)
            if dist.includes:
                matcher = FilespecMatcher(list(dist.includes), list(dist.excludes))
                for base in {_glob_base(g) for g in dist.includes}:
                    self._glob_dirs.setdefault(base, []).append((key, matcher))
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

    def dists_of(self, path: str) -> set[str]:
        """The dists `path` is an input of (not through their closures)."""
        found: set[str] = set(self._exact.get(path, ()))
        directory = posixpath.dirname(path)
        name = posixpath.basename(path)
        if any(fnmatch.fnmatchcase(name, p) for p in self._build_patterns):
            found |= self._build_dirs.get(directory, set())
        for ancestor in _ancestors(directory):
            for key, matcher in self._glob_dirs.get(ancestor, ()):
                if key not in found and matcher.matches([path]):
                    found.add(key)
        for module in _module_names(path):
            found |= self._modules.get(module, set())
        return found


def _glob_base(glob: str) -> str:
    """The directory a glob's matches lie under: `a/b/*.py` -> `a/b`, `a/**/x.py` -> `a`."""
    parts = glob.split("/")[:-1]
    base = []
    for part in parts:
        if any(c in part for c in "*?["):
            break
        base.append(part)
    return "/".join(base)


def closures(dependencies: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """Each key's transitive dependencies, itself included (cycles allowed)."""
    found: dict[str, frozenset[str]] = {}
    for key in dependencies:
        if key in found:
            continue
        seen = {key}
        stack = [key]
        while stack:
            current = stack.pop()
            known = found.get(current)
            if known is not None and current != key:
                seen |= known
                continue
            for dep in dependencies.get(current, ()):
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
        found[key] = frozenset(seen)
    return found


@dataclass(frozen=True)
class Origins:
    """Per dist: the index in the history (0 = the exported commit) of the commit its content is from."""

    index: Mapping[str, int]
    dirty: frozenset[str]


def find_origins(
    history: Sequence[HistoryCommit],
    index: InputIndex,
    closure: Mapping[str, frozenset[str]],
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
    origins = {key: min([wide_position, *(own[member] for member in closure[key])]) for key in index.keys}

    own_dirty: set[str] = set()
    dirty_wide = False
    for path in changed:
        dirty_wide = dirty_wide or index.is_repository_wide(path)
        own_dirty |= index.dists_of(path)
    dirty = frozenset(
        key for key in index.keys if dirty_wide or (own_dirty and not own_dirty.isdisjoint(closure[key]))
    )
    return Origins(origins, dirty)

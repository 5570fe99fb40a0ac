"""Which dists a changed path is an input of: each dist's inputs, indexed for many paths at once.

An input is a path whose change can change the wheel (origins.py says which); this module answers
"whose input is this path" quickly along a long history. No Pants import here: globs are matched by
the matcher the caller passes (Pants' own FilespecMatcher in the plugin), so `sources` globs mean
exactly what they mean to Pants.
"""
from __future__ import annotations

import copy
import fnmatch
import posixpath
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, Sequence

# Paths at the build root that shape every wheel: Pants' configuration (namespace, source roots,
# interpreter constraints, inference settings, build file patterns ...).
REPOSITORY_WIDE_GLOBS = ("pants.toml", "pants.*.toml", ".pants.rc", "pants.ini")
_PYTHON_SUFFIXES = (".py", ".pyi")
_INIT_FILES = ("__init__.py", "__init__.pyi")

# (includes, excludes) -> does a path match: how `sources` globs are matched.
GlobMatcher = Callable[[Sequence[str], Sequence[str]], Callable[[str], bool]]


@dataclass(frozen=True)
class DistInputs:
    """The inputs of one dist alone (not its closure), as paths relative to the build root."""

    files: tuple[str, ...]  # what it ships
    includes: tuple[str, ...]  # its sources globs
    excludes: tuple[str, ...]
    directories: tuple[str, ...]  # the directories of its BUILD files (its targets' spec paths)
    imports: tuple[str, ...]  # the modules its files import


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
        glob_matcher: GlobMatcher,
        repository_wide: Iterable[str] = (),
        repository_wide_directories: Iterable[str] = (),
        repository_wide_trees: Iterable[str] = (),
        excluded: Iterable[str] = (),
    ) -> None:
        self.keys = tuple(inputs)
        # Whether dist K's answers are the same in two indexes is decided by K's own inputs and these
        # settings alone: a walk of the history can go on from another index's walk (origins.py).
        self.inputs: Mapping[str, DistInputs] = dict(inputs)
        repository_wide, repository_wide_directories = tuple(repository_wide), tuple(repository_wide_directories)
        repository_wide_trees, excluded = tuple(repository_wide_trees), tuple(excluded)
        self.settings = (
            tuple(build_patterns),
            glob_matcher,
            frozenset(repository_wide),
            frozenset(repository_wide_directories),
            frozenset(repository_wide_trees),
            frozenset(excluded),
        )
        self._build_file = re.compile("|".join(fnmatch.translate(p) for p in build_patterns) or "(?!)")
        self._exact: dict[str, set[str]] = {}
        self._build_dirs: dict[str, set[str]] = {}
        # Glob base directory -> the dists whose globs start there; matchers are compiled when a
        # path first needs one (most never do: an exact path answers first).
        self._glob_dirs: dict[str, list[str]] = {}
        self._globs: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._glob_matcher = glob_matcher
        self._matchers: dict[str, Callable[[str], bool]] = {}
        self._answers: dict[str, frozenset[str]] = {}
        self._wide: dict[str, bool] = {}
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
            for table, entry in self._places(dist):
                table.setdefault(entry, set()).add(key)
            if dist.includes:
                self._globs[key] = (dist.includes, dist.excludes)
                for base in {_glob_base(g) for g in dist.includes}:
                    self._glob_dirs.setdefault(base, []).append(key)

    def _places(self, dist: DistInputs) -> Iterator[tuple[dict[str, set[str]], str]]:
        """Where a dist is filed (a table of this index and an entry of it), globs aside."""
        for path in dist.files:
            yield self._exact, path
        for directory in {path.rpartition("/")[0] for path in dist.files}:
            for ancestor in _ancestors(directory):
                yield self._init_dirs, ancestor
        for directory in dist.directories:
            for ancestor in _ancestors(directory):
                yield self._build_dirs, ancestor
        for module in dist.imports:
            # `from a.b import c` is recorded as `a.b.c`, which `a/b.py` may provide.
            yield self._modules, module
            parent = module.rpartition(".")[0]
            if parent:
                yield self._modules, parent

    def with_inputs(self, inputs: Mapping[str, DistInputs]) -> InputIndex:
        """This index for other dists' inputs with the same settings, leaving this one as it is.

        Made from this one: the dists whose inputs differ (or are gone) are filed out and their new
        inputs filed in, in new sets (tables are shared until written), so an export after a commit
        that changed a few dists' files or imports costs those few, not every dist again.
        """
        index = copy.copy(self)
        index.keys, index.inputs = tuple(inputs), dict(inputs)
        index._exact, index._init_dirs = dict(self._exact), dict(self._init_dirs)
        index._build_dirs, index._modules = dict(self._build_dirs), dict(self._modules)
        index._glob_dirs, index._globs, index._matchers = dict(self._glob_dirs), dict(self._globs), dict(self._matchers)
        index._answers = {}  # an answer names every dist a path is an input of: asked afresh
        old = self.inputs
        for key, dist in old.items():
            if inputs.get(key) == dist:
                continue
            for table, entry in index._places(dist):
                remaining = table.get(entry, set()) - {key}
                if remaining:
                    table[entry] = remaining
                else:
                    table.pop(entry, None)
            if key in index._globs:
                includes = index._globs.pop(key)[0]
                index._matchers.pop(key, None)
                for base in {_glob_base(g) for g in includes}:
                    index._glob_dirs[base] = [k for k in index._glob_dirs.get(base, ()) if k != key]
        for key, dist in inputs.items():
            if old.get(key) == dist:
                continue
            for table, entry in index._places(dist):
                table[entry] = table.get(entry, set()) | {key}
            if dist.includes:
                index._globs[key] = (dist.includes, dist.excludes)
                for base in {_glob_base(g) for g in dist.includes}:
                    index._glob_dirs[base] = [*index._glob_dirs.get(base, ()), key]
        return index

    def is_repository_wide(self, path: str) -> bool:
        """Whether a change of `path` shapes every wheel; remembered per path like `dists_of`."""
        answer = self._wide.get(path)
        if answer is None:
            answer = self._wide[path] = self._is_repository_wide(path)
        return answer

    def _is_repository_wide(self, path: str) -> bool:
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
                if key not in found and self._matcher(key)(path):
                    found.add(key)
        for module in _module_names(path):
            found |= self._modules.get(module, set())
        return found

    def _matcher(self, key: str) -> Callable[[str], bool]:
        matcher = self._matchers.get(key)
        if matcher is None:
            includes, excludes = self._globs[key]
            matcher = self._matchers[key] = self._glob_matcher(includes, excludes)
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

"""[export-dists].skip_paths: directories, by glob, whose targets the export leaves out."""
from __future__ import annotations

import functools
from pathlib import PurePosixPath

from pants.engine.internals.native_engine import FilespecMatcher
from pants.util.strutil import softwrap


class InvalidSkipPath(Exception):
    pass


def _normalize(pattern: str) -> str:
    """`/tests/`, `tests/**` and `tests` all name the directory `tests` (and what is below it)."""
    text = pattern.strip()
    while text.startswith("./"):
        text = text[2:]
    text = text.lstrip("/")
    while text.endswith("/**") or text.endswith("/"):
        text = text[:-3] if text.endswith("/**") else text[:-1]
    problem = None
    if not text or text in ("**", "*"):
        problem = "it matches every directory, which would leave out the whole repository"
    elif text.startswith("!"):
        problem = "exclusions (`!`) are not supported; list only the directories to leave out"
    elif ".." in PurePosixPath(text).parts:
        problem = "it reaches outside the build root (`..`)"
    if problem:
        raise InvalidSkipPath(
            softwrap(
                f"""
                [export-dists].skip_paths has the pattern {pattern!r}, but {problem}. Give
                directories relative to the build root, as globs: e.g. `**/tests` (every
                directory named tests, and everything below it) or `contrib/*/fixtures`.
                """
            )
        )
    return text


@functools.lru_cache(maxsize=64)
def _matchers(patterns: tuple[str, ...]) -> tuple[tuple[str, FilespecMatcher], ...]:
    return tuple((pattern, FilespecMatcher((_normalize(pattern),), ())) for pattern in patterns)


def check(patterns: tuple[str, ...]) -> None:
    """Raise InvalidSkipPath naming the first pattern that cannot be used."""
    _matchers(patterns)


def matching_pattern(patterns: tuple[str, ...], directory: str) -> str | None:
    """The first pattern (as written) matching `directory` or a directory above it, else None.

    `directory` is relative to the build root, `""` for the build root itself (never matched).
    """
    if not patterns or not directory:
        return None
    path = PurePosixPath(directory)
    candidates = [str(p) for p in (path, *path.parents) if str(p) != "."]
    for pattern, matcher in _matchers(patterns):
        if matcher.matches(candidates):
            return pattern
    return None


def reason(pattern: str) -> str:
    """Why a target under `pattern` is not a dist (one text per pattern: warnings group by it)."""
    return (
        f"[export-dists].skip_paths leaves its directory out (`{pattern}`); narrow that pattern, "
        "or exclude the dependency with `!`"
    )

"""PEP 561 `py.typed` markers: which files a dist marked typed adds, so type checkers read its annotations."""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Iterable

PY_TYPED = "py.typed"


def py_typed_markers(wheel_paths: Iterable[str]) -> tuple[str, ...]:
    """`<package>/py.typed` for every package directory the dist ships Python code in.

    mypy looks for the marker in each directory on the way down to a module, so a marker beside
    the dist's own modules covers them, and a namespace package's directories above them stay
    unmarked, as PEP 561 asks: other dists share those. Two dists with modules in one directory
    ship the same empty file. A module at the top of site-packages (no package) cannot be marked:
    PEP 561 covers packages only.
    """
    paths = set(wheel_paths)
    directories = {
        str(PurePosixPath(p).parent)
        for p in paths
        if p.endswith((".py", ".pyi")) and "/" in p
    }
    return tuple(sorted(f"{d}/{PY_TYPED}" for d in directories if f"{d}/{PY_TYPED}" not in paths))

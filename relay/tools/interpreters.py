"""Which Python `relay verify` makes its venvs with: one that every checked dist's Requires-Python admits."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from typing import Callable, Iterable, Iterator

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version


class NoSuitablePython(RuntimeError):
    """No interpreter found that the dists' Requires-Python admit: the message says what to pass."""


def candidates() -> Iterator[str]:
    """This interpreter, then `python3.X` on the PATH (newest first), then pyenv's installs."""
    yield sys.executable
    for minor in range(15, 5, -1):
        found = shutil.which(f"python3.{minor}")
        if found:
            yield found
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    yield from sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3")), reverse=True)


def version_of(python: str) -> Version | None:
    """The interpreter's version, None if it does not run (a pyenv shim for a version not enabled)."""
    try:
        out = subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True, text=True, timeout=30,
        )
        return Version(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, InvalidVersion):
        return None


def choose_python(
    requires_python: Iterable[str | None],
    *,
    found: Iterable[str] | None = None,
    probe: Callable[[str], Version | None] = version_of,
) -> str:
    """The first candidate whose version is in every Requires-Python given (None: no constraint)."""
    specifiers = []
    for text in sorted({r for r in requires_python if r}):
        try:
            specifiers.append(SpecifierSet(text))
        except InvalidSpecifier:
            continue  # pip will say what is wrong with it
    tried: list[str] = []
    for python in found if found is not None else candidates():
        version = probe(python)
        if version is None:
            continue
        if all(specifier.contains(version, prereleases=True) for specifier in specifiers):
            return python
        tried.append(f"{python} ({version})")
    wanted = " and ".join(str(s) for s in specifiers)
    raise NoSuitablePython(
        f"the dists require Python {wanted}, and no interpreter found here admits that"
        + (f" (tried {', '.join(tried)})" if tried else "")
        + ": pass one with --python /path/to/python3.X"
    )

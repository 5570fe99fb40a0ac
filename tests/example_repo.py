"""Turn the bundled example monorepo into a real git repository with history, for integration tests."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


def _find_repo_root() -> Path:
    """The export-dists checkout: the parent of tests/, or $EXPORT_DISTS_HOME inside a Pants sandbox."""
    beside = Path(__file__).resolve().parent.parent
    if (beside / "examples" / "monorepo" / "pants.toml").is_file():
        return beside
    # Under `./pants test` this file runs from a sandbox without examples/ (the outer build ignores
    # it); ./pants exports EXPORT_DISTS_HOME and [test].extra_env_vars passes it through.
    home = os.environ.get("EXPORT_DISTS_HOME")
    if home and (Path(home) / "examples" / "monorepo" / "pants.toml").is_file():
        return Path(home)
    return beside


REPO_ROOT = _find_repo_root()
EXAMPLE_DIR = REPO_ROOT / "examples" / "monorepo"
PANTS = REPO_ROOT / "pants"

# The example's deep target and its first-party chain, deepest import last (see its README).
DEEP_DIST = "monorepo.src.python.wordcount.app"
DEEP_CHAIN = (
    "monorepo.src.python.wordcount.app",
    "monorepo.src.python.wordcount.service",
    "monorepo.libs.py.textkit.core",
    "monorepo.libs.py.textkit.util",
    "monorepo.libs.py.textkit.base",
)

# The module the history commits after the first one edit: a leaf of the deep chain, so every
# commit changes a real dist.
HISTORY_MODULE = "libs/py/textkit/base/tokens.py"
_HISTORY_LINE = re.compile(r"^# Example history: commit \d+\.$", re.MULTILINE)

# Pants' output and caches at the top of the example, and byte code anywhere, are not sources.
_TOP_LEVEL_EXCLUDED = frozenset({"dist", ".pants.d", ".pids"})
# A .git below the top would be committed as an embedded repository (a gitlink).
_EXCLUDED_ANYWHERE = frozenset({".git", "__pycache__"})

# Variables of an enclosing Python or PEX process (e.g. a Pants test sandbox) that would leak into
# the Pants run started here and change which code it imports.
_LEAKY_ENV_PREFIXES = ("PEX_",)
_LEAKY_ENV_VARS = frozenset({"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"})

_GIT_IDENTITY = {
    "user.name": "Example Monorepo",
    "user.email": "example@export-dists.invalid",
    "commit.gpgsign": "false",
    "tag.gpgsign": "false",
}


class ExampleRepoError(RuntimeError):
    """Making or changing the example repository failed."""


class PantsRunError(ExampleRepoError):
    """`./pants` exited with a non-zero status; `result` holds its output."""

    def __init__(self, message: str, result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class ExampleRepo:
    """A copy of examples/monorepo that is a git repository on branch main."""

    path: Path
    # Every commit made through make_example_repo() and commit(), oldest first; commit() appends.
    shas: list[str]

    @property
    def head(self) -> str:
        """The newest commit made through this helper."""
        return self.shas[-1]

    def git(self, *args: str) -> str:
        """Run git in the repository and return its stripped standard output."""
        return _git(self.path, *args)

    def commit(self, message: str, changes: Mapping[str, str | None]) -> str:
        """Write (text) or delete (None) the given repository-relative paths, commit, return the sha."""
        if not changes:
            raise ExampleRepoError(f"commit {message!r} has no changes: pass at least one path.")
        for relpath, content in changes.items():
            target = self._inside(relpath)
            if content is None:
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
                else:
                    raise ExampleRepoError(
                        f"cannot delete {relpath} in {self.path}: it does not exist. "
                        "Check the path (relative to the repository root)."
                    )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
        self.git("add", "--all", "--", *changes)
        if not self.git("status", "--porcelain", "--", *changes):
            raise ExampleRepoError(
                f"commit {message!r} changes nothing in {self.path}: the files already had that content."
            )
        self.git("commit", "--quiet", "--message", message)
        sha = self.git("rev-parse", "HEAD")
        self.shas.append(sha)
        return sha

    def pants(
        self,
        *args: str,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `<checkout>/pants --no-pantsd ARGS` in the repository and capture its output.

        `env` adds to (or overrides) the environment. With `check`, a failure raises PantsRunError
        with the end of the output.
        """
        command = [str(PANTS), "--no-pantsd", *args]
        result = subprocess.run(
            command,
            cwd=self.path,
            env=pants_environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise PantsRunError(
                f"`{' '.join(command)}` in {self.path} exited with {result.returncode}.\n"
                f"--- stdout (end) ---\n{_tail(result.stdout)}\n"
                f"--- stderr (end) ---\n{_tail(result.stderr)}",
                result,
            )
        return result

    def _inside(self, relpath: str) -> Path:
        target = (self.path / relpath).resolve()
        root = self.path.resolve()
        if target == root or root not in target.parents or ".git" in Path(relpath).parts:
            raise ExampleRepoError(
                f"{relpath!r} is not a file path inside {self.path}: give a path relative to the "
                "repository root, outside .git."
            )
        return target


def make_example_repo(dest: Path, *, commits: int = 2, source: Path = EXAMPLE_DIR) -> ExampleRepo:
    """Copy the example monorepo to `dest` and give it `commits` commits on branch main.

    The first commit holds the copy; each later one edits a comment line of HISTORY_MODULE. `dest`
    must not exist or be an empty directory. Pants output (dist/, .pants.d/, .pids/), byte code and
    any .git are left out of the copy.
    """
    if commits < 1:
        raise ExampleRepoError(f"commits={commits}: an example repository needs at least 1 commit.")
    if not (source / "pants.toml").is_file():
        raise ExampleRepoError(
            f"{source} has no pants.toml: expected the example monorepo of an export-dists checkout."
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ExampleRepoError(f"{dest} exists and is not an empty directory: pass a new path.")

    source = source.resolve()

    def excluded(directory: str, names: list[str]) -> set[str]:
        at_top = Path(directory).resolve() == source
        return {
            name
            for name in names
            if name in _EXCLUDED_ANYWHERE
            or name.endswith(".pyc")
            or (at_top and (name in _TOP_LEVEL_EXCLUDED or name.startswith(".pants.workdir.file_lock")))
        }

    shutil.copytree(source, dest, symlinks=True, ignore=excluded, dirs_exist_ok=True)
    path = dest.resolve()
    _git(path, "init", "--quiet", "--initial-branch", "main")
    for key, value in _GIT_IDENTITY.items():
        _git(path, "config", "--local", key, value)
    _git(path, "add", "--all")
    _git(path, "commit", "--quiet", "--message", "Import the export-dists example monorepo")
    repo = ExampleRepo(path=path, shas=[_git(path, "rev-parse", "HEAD")])

    for number in range(2, commits + 1):
        module = (path / HISTORY_MODULE).read_text(encoding="utf-8")
        line = f"# Example history: commit {number}."
        if _HISTORY_LINE.search(module):
            module = _HISTORY_LINE.sub(line, module, count=1)
        else:
            module = module.rstrip("\n") + f"\n\n{line}\n"
        repo.commit(f"Example history: commit {number}", {HISTORY_MODULE: module})
    return repo


def pants_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for running ./pants: this one minus variables of an enclosing PEX/Python."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _LEAKY_ENV_VARS and not key.startswith(_LEAKY_ENV_PREFIXES)
    }
    env["EXPORT_DISTS_HOME"] = str(REPO_ROOT)
    env.update(extra or {})
    return env


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if result.returncode != 0:
        raise ExampleRepoError(
            f"`git {' '.join(args)}` in {cwd} exited with {result.returncode}: "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout.strip()


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])

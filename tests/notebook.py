"""A notebook user's side of the end-to-end tests: fresh venvs, pip and uv isolated from this machine."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from tests.venvs import clean_environment, uv_binary

_SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

# Prints {name: {"version": ..., "sha": ..., "address": ...}} for every dist carrying export_dists.json.
_MONOREPO_DISTS = """
import importlib.metadata as m, json
found = {}
for dist in m.distributions():
    info = dist.read_text("export_dists.json")
    if info is not None:
        found[dist.metadata["Name"]] = dict(json.loads(info), version=dist.version)
print(json.dumps(found))
"""


def ca_bundle() -> str | None:
    """The CA bundle pip and uv should trust: this machine's pip `cert`, as tests.venvs finds it."""
    env = clean_environment()
    for candidate in (env.get("PIP_CERT"), env.get("SSL_CERT_FILE"), str(_SYSTEM_CA_BUNDLE)):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def client_environment() -> dict[str, str]:
    """A notebook's installers: no pip or uv configuration of this machine (its extra indexes,
    find-links, constraints), only its CA bundle, so PyPI still verifies."""
    env = {k: v for k, v in clean_environment().items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        # A pull-mode relay answers a commit's first request once its export is built.
        PIP_DEFAULT_TIMEOUT="600",
        UV_NO_CONFIG="1",
        UV_HTTP_TIMEOUT="600",
    )
    bundle = ca_bundle()
    if bundle:
        env.update(PIP_CERT=bundle, SSL_CERT_FILE=bundle)
    return env


def python_for(version: str) -> str | None:
    """A working `python<version>` (pyenv shims can exist for versions that are not selected)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(f"python{version}"), *map(str, sorted(pyenv.glob(f"{version}*/bin/python{version}")))]
    for candidate in candidates:
        if candidate:
            check = subprocess.run(
                [candidate, "-c", f"import sys; assert sys.version.startswith('{version}.')"],
                capture_output=True, env=clean_environment(),
            )
            if check.returncode == 0:
                return candidate
    return None


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 900,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a client command in client_environment() (plus `env`); with `check`, fail on non-zero."""
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env={**client_environment(), **(env or {})},
        timeout=timeout, cwd=cwd,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"`{' '.join(map(str, argv))}` exited with {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


@dataclass(frozen=True)
class Notebook:
    """A fresh virtualenv, as a notebook kernel has: its own pip and nothing else."""

    path: Path

    @classmethod
    def create(cls, path: Path, python: str) -> "Notebook":
        run([python, "-m", "venv", str(path)])
        return cls(path)

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def pip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([self.python, "-m", "pip", *args], check=check)

    def uv_pip(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        uv = uv_binary()
        assert uv, "uv is needed (it is in 3rdparty/python/requirements.txt)"
        return run([uv, "pip", *args[:1], "--python", self.python, *args[1:]], env=env)

    def python_code(self, code: str) -> str:
        # -I: neither the working directory nor PYTHONPATH may supply a module: only the venv.
        return run([self.python, "-I", "-c", code]).stdout

    def pip_version(self) -> str:
        return self.pip("--version").stdout.split()[1]

    def version_of(self, name: str) -> str:
        return self.python_code(f"import importlib.metadata as m; print(m.version({name!r}))").strip()

    def monorepo_dists(self) -> dict[str, dict[str, str]]:
        """Every installed dist that export-dists built: name -> its export_dists.json plus version."""
        return dict(json.loads(self.python_code(_MONOREPO_DISTS)))

    def check(self) -> None:
        """`pip check` must be clean."""
        result = self.pip("check", check=False)
        assert result.returncode == 0, f"pip check in {self.path}:\n{result.stdout}{result.stderr}"

"""Fresh virtualenvs for tests: make one, install into it, run Python in it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


def _python(version: str) -> str | None:
    found = shutil.which(f"python{version}")
    # A pyenv shim answers only for the versions pyenv has activated (else exit 127): take the
    # installed interpreter itself, below.
    if found and "/shims/" not in found:
        return found
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for candidate in sorted(pyenv.glob(f"{version}*/bin/python{version}")):
        return str(candidate)
    return None


@dataclass(frozen=True)
class Venv:
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def run(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.python), *args],
            capture_output=True,
            text=True,
            env={**clean_environment(), **(env or {})},
            timeout=600,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed with exit code {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def pip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "pip", "--disable-pip-version-check", *args, check=check)

    def installed(self) -> dict[str, str]:
        listing = self.run("-c", "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
        import json

        return dict(json.loads(listing.stdout))


def clean_environment() -> dict[str, str]:
    """The caller's environment without what an enclosing venv, pex or pytest would leak."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEX_")}
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(name, None)
    # Under `./pants test`, pip's configuration is switched off (PIP_CONFIG_FILE=/dev/null, see
    # ./pants), and with it the CA bundle it named: give pip and uv that bundle back.
    if "PIP_CERT" not in env:
        for candidate in (env.get("PANTS_CA_CERTS_PATH"), env.get("SSL_CERT_FILE")):
            if candidate and Path(candidate).is_file():
                env["PIP_CERT"] = candidate
                env.setdefault("SSL_CERT_FILE", candidate)
                break
    return env


def make_venv(dest: Path, python_version: str | None = None) -> Venv:
    """A fresh virtualenv with pip, from `python_version` (e.g. "3.11") when that is installed."""
    interpreter = _python(python_version) if python_version else None
    if interpreter:
        subprocess.run([interpreter, "-m", "venv", str(dest)], check=True, env=clean_environment())
    else:
        venv.EnvBuilder(with_pip=True, clear=True).create(dest)
    return Venv(dest)


def uv_binary() -> str | None:
    try:
        from uv import find_uv_bin  # the uv wheel ships the binary; Pants' test venvs have no bin/uv

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    beside = Path(sys.executable).parent / "uv"
    if beside.exists():
        return str(beside)
    return shutil.which("uv")


def run(argv: Sequence[str], *, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, env=clean_environment(), timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result

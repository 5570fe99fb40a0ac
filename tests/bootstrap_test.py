"""The ./pants bootstrap: clear errors, no downloads from outside the package registries."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.example_repo import REPO_ROOT

PANTS = REPO_ROOT / "pants"
# The only hosts the project's own Pants resolves may fetch from.
REGISTRY_HOSTS = {"files.pythonhosted.org", "pypi.org"}


def run_bootstrap(*args: str, env: dict[str, str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PANTS), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def minimal_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment with no Python 3.9 to be found: only the basic tools on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("bash", "sed", "head", "dirname", "sha256sum", "cut", "cat", "mkdir", "flock", "pwd", "env"):
        found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        if found and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    return {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path / "home"),
        "PYENV_ROOT": str(tmp_path / "no-pyenv"),
        "EXPORT_DISTS_CACHE_DIR": str(tmp_path / "cache"),
        **extra,
    }


def test_no_python39_says_what_to_install(tmp_path: Path) -> None:
    result = run_bootstrap("--version", env=minimal_env(tmp_path))
    assert result.returncode != 0
    assert "needs Python 3.9" in result.stderr
    assert "pyenv install 3.9" in result.stderr and "EXPORT_DISTS_PYTHON" in result.stderr
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").glob("venv-*"))


def test_a_wrong_override_is_named(tmp_path: Path) -> None:
    result = run_bootstrap("--version", env=minimal_env(tmp_path, EXPORT_DISTS_PYTHON="/nonexistent/python3.9"))
    assert result.returncode != 0
    assert "EXPORT_DISTS_PYTHON=/nonexistent/python3.9 is not a working Python 3.9" in result.stderr


def test_outside_a_build_root_is_a_clear_error(tmp_path: Path) -> None:
    result = run_bootstrap("--version", env=minimal_env(tmp_path), cwd=tmp_path)
    assert result.returncode != 0
    assert "no pants.toml" in result.stderr


def test_bootstrap_points_pants_at_the_locally_built_pex() -> None:
    """The pex tool comes from PyPI, built locally; [pex-cli] gets its exact hash and size."""
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("PANTS_PEX_CLI_"):
            del env[name]
    shown = run_bootstrap("--bootstrap-env", env=env)
    assert shown.returncode == 0, shown.stderr
    settings = dict(line.split("=", 1) for line in shown.stdout.splitlines())
    url, known = settings["PANTS_PEX_CLI_URL_TEMPLATE"], settings["PANTS_PEX_CLI_KNOWN_VERSIONS"]
    assert url.startswith("file://")
    pex = Path(url[len("file://") :])
    data = pex.read_bytes()
    for line in json.loads(known):
        version, platform, sha256, size = line.split("|")
        assert version.startswith("v2.")
        assert sha256 == hashlib.sha256(data).hexdigest() and int(size) == len(data), platform


@pytest.mark.parametrize("lockfile", sorted(REPO_ROOT.glob("**/*.lock")), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_lockfiles_fetch_only_from_the_package_registries(lockfile: Path) -> None:
    urls = re.findall(r'"url":\s*"([^"]+)"', lockfile.read_text())
    assert urls, f"{lockfile} has no artifact URLs"
    hosts = {re.sub(r"^https://([^/]+)/.*$", r"\1", url) for url in urls}
    assert hosts <= REGISTRY_HOSTS, hosts - REGISTRY_HOSTS


def test_configuration_names_no_other_host() -> None:
    for config in [REPO_ROOT / "pants.toml", REPO_ROOT / "examples" / "monorepo" / "pants.toml", PANTS]:
        text = config.read_text()
        assert "github.com" not in text and "githubusercontent" not in text, config


def test_the_ca_bundle_named_by_pip_configuration_is_kept(tmp_path: Path) -> None:
    """Pants' resolves run without pip's configuration, but keep trusting the CA it named."""
    bundle = tmp_path / "company-ca.pem"
    bundle.write_text("not a real bundle; only its path is passed on\n")
    config_home = tmp_path / "config"
    (config_home / "pip").mkdir(parents=True)
    (config_home / "pip" / "pip.conf").write_text(f"[global]\ncert = {bundle}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PANTS_"))}
    env["XDG_CONFIG_HOME"] = str(config_home)
    shown = run_bootstrap("--bootstrap-env", env=env)
    assert shown.returncode == 0, shown.stderr
    settings = dict(line.split("=", 1) for line in shown.stdout.splitlines())
    assert settings["PANTS_CA_CERTS_PATH"] == str(bundle)
    assert "PIP_CONFIG_FILE=/dev/null" in settings["PANTS_SUBPROCESS_ENVIRONMENT_ENV_VARS"]

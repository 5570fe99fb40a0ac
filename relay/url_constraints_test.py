"""URL requirements through the relay's constraints.txt, with real pip and uv and no network.

A dist of the export requires `urlpkg @ file:///...whl` and `gitpkg @ git+file:///...@v1` (a git
repository on disk whose in-tree build backend needs nothing from an index).
"""

from __future__ import annotations

import base64
import hashlib
import io
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from relay.clients_test import UV, _client_env, _venv
from relay.index.constraints import url_requirements
from relay_testing.exports import DistSpec, fake_sha, write_export
from tests.relay_process import RelayProcess as Relay

GIT = shutil.which("git")


def _wheel_bytes(name: str, version: str) -> bytes:
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"NAME = {name!r}\n".encode(),
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for path, data in files.items()
    ]
    files[f"{dist_info}/RECORD"] = ("\n".join(record + [f"{dist_info}/RECORD,,"]) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return buffer.getvalue()


# A PEP 517 backend inside the repository (backend-path): building needs no download at all.
_BACKEND = '''
import base64, hashlib, io, os, zipfile
_NAME, _VERSION = "gitpkg", "1.0"
def get_requires_for_build_wheel(config_settings=None):
    return []
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    filename = f"{_NAME}-{_VERSION}-py3-none-any.whl"
    with open(os.path.join(wheel_directory, filename), "wb") as f:
        f.write(base64.b64decode(_WHEEL))
    return filename
'''


def _git_repo(path: Path) -> str:
    path.mkdir()
    wheel = base64.b64encode(_wheel_bytes("gitpkg", "1.0")).decode()
    (path / "backend.py").write_text(_BACKEND + f"_WHEEL = {wheel!r}\n")
    (path / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    )
    env = {**_client_env(), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-q", "-m", "v1"], ["tag", "v1"]):
        subprocess.run(["git", "-C", str(path), *args], check=True, env=env)
    # `git+file:///path` is not a valid URL for the packaging that pip 23 vendors (no host): name one.
    return f"gitpkg @ git+file://localhost{path}@v1"


@pytest.fixture
def url_relay(store_dir: Path, tmp_path: Path) -> Iterator[Relay]:
    wheel = tmp_path / "urlpkg-1.0-py3-none-any.whl"
    wheel.write_bytes(_wheel_bytes("urlpkg", "1.0"))
    requirements = (f"urlpkg @ {wheel.as_uri()}", _git_repo(tmp_path / "gitpkg"))
    dists = (
        DistSpec("monorepo.app", requires=("monorepo.lib",)),
        DistSpec("monorepo.lib", third_party=requirements, imports=("urlpkg", "gitpkg")),
    )
    write_export(store_dir, fake_sha(1), 1, dists)
    server = Relay(store_dir)
    try:
        yield server
    finally:
        server.stop()


def _imports(python: Path) -> str:
    code = "import monorepo_app, urlpkg, gitpkg; print(urlpkg.NAME, gitpkg.NAME)"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout.strip()


def test_constraints_carry_the_url_requirements(url_relay: Relay) -> None:
    lines = url_relay.get("/main/constraints.txt").body.decode().splitlines()
    pins = [line for line in lines if not line.startswith("#")]
    assert pins[:2] == [f"monorepo.app=={pins[0].split('==')[1]}", f"monorepo.lib=={pins[1].split('==')[1]}"]
    assert [p.split(" @ ")[0] for p in pins[2:]] == ["gitpkg", "urlpkg"]
    assert "git+file://" in pins[2] and pins[3].endswith(".whl")


@pytest.mark.skipif(not GIT, reason="git is needed for a git+file:// requirement")
def test_uv_needs_the_constraints_and_installs_with_them(url_relay: Relay, tmp_path: Path) -> None:
    assert UV, "uv is needed (3rdparty/python/requirements.txt)"
    python = _venv(tmp_path / "venv")
    base = [UV, "pip", "install", "-q", "--no-cache", "--python", str(python), "--index-url", f"{url_relay.url}/main/simple/"]
    refused = subprocess.run([*base, "monorepo.app"], capture_output=True, text=True, env=_client_env(), timeout=300)
    assert refused.returncode != 0  # the problem the constraints file solves: uv refuses transitive URLs
    subprocess.run(
        [*base, "-c", f"{url_relay.url}/main/constraints.txt", "monorepo.app"],
        check=True, env=_client_env(), timeout=300,
    )
    assert _imports(python) == "urlpkg gitpkg"


@pytest.mark.skipif(not GIT, reason="git is needed for a git+file:// requirement")
def test_pip_installs_with_the_constraints(url_relay: Relay, tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-cache-dir", "-q", "--index-url", f"{url_relay.url}/main/simple/",
         "-c", f"{url_relay.url}/main/constraints.txt", "monorepo.app"],
        check=True, env=_client_env(), timeout=300,
    )
    assert _imports(python) == "urlpkg gitpkg"


def test_url_requirements_drop_extras_and_keep_markers(store_dir: Path) -> None:
    spec = DistSpec("monorepo.x", third_party=('pkg[fast] @ https://h/pkg.whl ; sys_platform == "linux"', "requests>=2", "b==1"))
    export = write_export(store_dir, fake_sha(2), 1, (spec,))
    assert url_requirements(export) == ('pkg @ https://h/pkg.whl ; sys_platform == "linux"',)


@pytest.mark.skipif(not GIT, reason="git is needed for a git+file:// requirement")
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_the_lines_a_dist_page_shows_install_it(store_dir: Path, tmp_path: Path, installer: str) -> None:
    """Copied from the page as they are: with URL requirements, the lines carry the constraints (uv's rule)."""
    from relay.web.pages_test import line

    wheel = tmp_path / "urlpkg-1.0-py3-none-any.whl"
    wheel.write_bytes(_wheel_bytes("urlpkg", "1.0"))
    dists = (
        DistSpec("monorepo.app", requires=("monorepo.lib",)),
        DistSpec("monorepo.lib", third_party=(f"urlpkg @ {wheel.as_uri()}", _git_repo(tmp_path / "gitpkg")),
                 imports=("urlpkg", "gitpkg")),
    )
    write_export(store_dir, fake_sha(1), 1, dists)
    # An upstream nothing is asked of (every requirement is first-party or a URL): the lines need no
    # public index, and the test no network.
    server = Relay(store_dir, "--upstream", "http://127.0.0.1:9/simple")
    try:
        page = server.get("/main/-/monorepo-app/", accept="text/html").body.decode()
        copied = shlex.split(line(page, "line-install" if installer == "pip" else "line-uv-install"))
        python = _venv(tmp_path / "venv")
        if installer == "pip":
            assert copied[:2] == ["%pip", "install"]
            argv = [str(python), "-m", "pip", "install", "--no-cache-dir", *copied[2:]]
        else:
            assert UV and copied[:3] == ["uv", "pip", "install"]
            argv = [UV, "pip", "install", "--no-cache", "--python", str(python), *copied[3:]]
        assert "-c" in copied and copied[-1] == "monorepo.app"
        subprocess.run(argv, check=True, env=_client_env(), timeout=300)
        assert _imports(python) == "urlpkg gitpkg"
    finally:
        server.stop()

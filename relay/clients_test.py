"""A real relay process on 127.0.0.1 with real clients: pip and uv install a 3-deep chain."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from relay.auth.credentials import add_entry, password_entry
from relay.contract import Export
from relay_testing.exports import fake_sha, write_export
from tests.relay_process import RelayProcess as Relay

BIN = Path(sys.executable).parent


def _find_uv() -> str | None:
    try:
        from uv import find_uv_bin  # the uv wheel ships the binary; Pants' test venvs have no bin/uv

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv", path=str(BIN)) or shutil.which("uv")


UV = _find_uv()


def _client_env() -> dict[str, str]:
    """The machine's pip and uv settings (extra indexes, constraints) must not leak into the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1")
    return env


@pytest.fixture
def chain(store_dir: Path) -> list[Export]:
    return [write_export(store_dir, fake_sha(n), n) for n in (1, 2)]


@pytest.fixture
def relay(store_dir: Path, chain: list[Export]) -> Iterator[Relay]:
    server = Relay(store_dir)
    try:
        yield server
    finally:
        server.stop()


def _venv(path: Path) -> Path:
    """A fresh virtualenv with its own pip (from ensurepip: no download), as a notebook has."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, env=_client_env())
    return path / "bin" / "python"


def _pip_version(python: Path) -> tuple[int, ...]:
    out = subprocess.run([str(python), "-m", "pip", "--version"], check=True, capture_output=True, text=True).stdout
    return tuple(int(p) for p in out.split()[1].split(".")[:2])


def _installed(python: Path) -> str:
    code = "import monorepo_chain_a, monorepo_chain_c; print(monorepo_chain_a.VERSION, monorepo_chain_c.SHA)"
    return subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout


def test_pip_installs_the_chain(relay: Relay, chain: list[Export], tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-cache-dir", "-q",
         "--index-url", f"{relay.url}/main/simple/", "monorepo.chain.a"],
        check=True, env=_client_env(),
    )
    assert _installed(python).split() == [chain[1].version, chain[1].sha]
    # Back to an older commit with the branch index and that commit's constraints file: the whole
    # chain moves to the commit.
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-cache-dir", "-q",
         "--index-url", f"{relay.url}/main/simple/", "-c", f"{relay.url}/{chain[0].sha[:8]}/constraints.txt",
         "monorepo.chain.a"],
        check=True, env=_client_env(),
    )
    assert _installed(python).split() == [chain[0].version, chain[0].sha]
    # pip >= 23.2 resolves from the .metadata files (older pips from the JSON page download wheels).
    if _pip_version(python) >= (23, 2):
        assert ".whl.metadata" in relay.log.read_text()


def test_uv_installs_the_chain(relay: Relay, chain: list[Export], tmp_path: Path) -> None:
    assert UV, "uv is needed (3rdparty/python/requirements.txt)"
    python = _venv(tmp_path / "venv")
    subprocess.run(
        [UV, "pip", "install", "-q", "--no-cache", "--python", str(python),
         "--index-url", f"{relay.url}/simple", "monorepo.chain.a"],
        check=True, env=_client_env(),
    )
    assert _installed(python).split() == [chain[1].version, chain[1].sha]


def test_pip_with_basic_auth(store_dir: Path, chain: list[Export], tmp_path: Path) -> None:
    auth_file = tmp_path / "relay.auth"
    add_entry(auth_file, password_entry("alice", "pw", iterations=1000))
    server = Relay(store_dir, "--auth-file", str(auth_file))
    try:
        python = _venv(tmp_path / "venv")
        url = f"http://alice:pw@127.0.0.1:{server.port}/main/simple/"
        subprocess.run(
            [str(python), "-m", "pip", "install", "--no-cache-dir", "-q",
             "--no-input", "--index-url", url, "monorepo.chain.c"],
            check=True, env=_client_env(),
        )
        denied = subprocess.run(
            [str(python), "-m", "pip", "download", "--no-cache-dir", "-q",
             "--no-input", "-d", str(tmp_path / "d"), "--index-url", f"{server.url}/main/simple/",
             "monorepo.chain.b"],
            env=_client_env(), capture_output=True, text=True,
        )
        assert denied.returncode != 0
    finally:
        server.stop()


def test_graceful_stop_and_request_log(relay: Relay) -> None:
    urllib.request.urlopen(relay.url + "/main/simple/").read()
    assert relay.stop() == 0
    line = [l for l in relay.log.read_text().splitlines() if 'path="/main/simple/"' in l][0]
    for field in ("method=GET", "status=200", "ms=", "client=127.0.0.1"):
        assert field in line
    assert int(line.rsplit("bytes=", 1)[1]) > 0, line


def test_pull_mode_process_builds_once_for_concurrent_requests(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from relay.building.materialize_test import fake_command, git

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "f").write_text("x")
    git(repo, "add", "f")
    git(repo, "commit", "-q", "-m", "one")
    runs = tmp_path / "runs"
    store = tmp_path / "store"
    server = Relay(store, "--repo", str(repo), "--export-command", fake_command(runs, "--sleep 1").template)
    try:
        python = _venv(tmp_path / "venv")
        urls = [f"{server.url}/main/simple/monorepo-chain-a/", f"{server.url}/main/simple/monorepo-tools/"]
        with ThreadPoolExecutor(2) as pool:
            pages = list(pool.map(lambda u: urllib.request.urlopen(u, timeout=60).read(), urls))
        assert all(b".whl" in page for page in pages)
        assert runs.read_text().splitlines() == ["run"]
        subprocess.run(
            [str(python), "-m", "pip", "install", "--no-cache-dir", "-q",
             "--index-url", f"{server.url}/main/simple/", "monorepo.chain.a"],
            check=True, env=_client_env(),
        )
        head = git(repo, "rev-parse", "HEAD")
        assert _installed(python).split() == [f"0.1+g{head[:12]}", head]
    finally:
        server.stop()


def test_several_workers_share_the_port_and_stop_together(store_dir: Path, chain: list[Export]) -> None:
    server = Relay(store_dir, "--workers", "2")
    try:
        workers = subprocess.run(
            ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(workers) == 1, "one forked worker beside the first process"
        for _ in range(20):
            with urllib.request.urlopen(f"{server.url}/main/simple/monorepo-chain-a/", timeout=5) as page:
                assert chain[1].version in page.read().decode()
    finally:
        assert server.stop() == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the relay"

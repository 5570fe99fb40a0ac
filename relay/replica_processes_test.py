"""Relay processes (replicas) on one SeaweedFS bucket: installs through each, a replica killed while it
builds, the store stopped and restarted under load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from relay import cli
from relay.clients_test import UV, _client_env, _installed, _venv
from relay.conftest import s3_client
from relay.building.materialize_test import fake_command, git
from relay_testing.seaweedfs import SeaweedFS
from relay_testing.exports import fake_sha, write_export
from tests.relay_process import RELAY_ROOT, RelayProcess


def _env(server: SeaweedFS, tmp_path: Path) -> dict[str, str]:
    # TMPDIR: staging a killed replica leaves behind stays inside the test's directory.
    return {**server.env, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "TMPDIR": str(tmp_path)}


def _replicas(count: int, url: str, env: dict[str, str], tmp_path: Path, *args: str) -> list[RelayProcess]:
    started: list[RelayProcess] = []
    try:
        for n in range(count):
            started.append(RelayProcess(url, *args, log=tmp_path / f"replica-{n}.log", env=env))  # type: ignore[arg-type]
    except BaseException:
        for replica in started:
            replica.stop()
        raise
    return started


@pytest.fixture
def published(s3_url: str, tmp_path: Path) -> str:
    out = tmp_path / "exports"
    for n in (1, 2):
        export = write_export(out, fake_sha(n), n)
        assert cli.main(["publish", str(out / export.key), "--store", s3_url]) == 0
    return s3_url


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


def test_pip_and_uv_install_through_each_replica(
    published: str, seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    assert UV, "uv is needed (3rdparty/python/requirements.txt)"
    replicas = _replicas(2, published, _env(seaweedfs, tmp_path), tmp_path)
    try:
        for n, replica in enumerate(replicas):
            python = _venv(tmp_path / f"pip-{n}")
            subprocess.run(
                [str(python), "-m", "pip", "install", "--no-cache-dir", "-q",
                 "--index-url", f"{replica.url}/main/simple/", "monorepo.chain.a"],
                check=True, env=_client_env(),
            )
            assert _installed(python).split()[1] == fake_sha(2)
            python = _venv(tmp_path / f"uv-{n}")
            subprocess.run(
                [UV, "pip", "install", "-q", "--no-cache", "--python", str(python),
                 "--index-url", f"{replica.url}/simple", "monorepo.chain.a"],
                check=True, env=_client_env(),
            )
            assert _installed(python).split()[1] == fake_sha(2)
    finally:
        for replica in replicas:
            replica.stop()


def _end_processes_mentioning(marker: str) -> None:
    """End the export commands a killed replica left running (by pid, found by their unique path)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and int(entry.name) != os.getpid():
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_kill_9_of_the_building_replica(s3_url: str, seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "f").write_text("x")
    git(repo, "add", "f")
    git(repo, "commit", "-q", "-m", "one")
    head = git(repo, "rev-parse", "HEAD")
    runs = tmp_path / "runs"
    # The first replica may start building main's tip as soon as it starts: the build must outlast
    # the second replica's start-up on a loaded machine, or it is done before the kill.
    command = fake_command(runs, "--sleep 10").template
    replicas = _replicas(
        2, s3_url, _env(seaweedfs, tmp_path), tmp_path,
        "--repo", str(repo), "--export-command", command, "--build-lease", "2",
    )
    building, other = replicas
    try:
        first = threading.Thread(target=_status, args=(f"{building.url}/{head}/simple/",))
        first.start()
        for _ in range(600):
            if runs.exists() and runs.read_text():
                break
            first.join(0.05)
        assert runs.read_text().splitlines() == ["run"]
        building.process.send_signal(signal.SIGKILL)
        building.process.wait()
        first.join()
        # The other replica waits for the dead one's lease to expire, then builds the commit itself.
        assert _status(f"{other.url}/{head}/simple/monorepo-chain-a/") == 200
        assert runs.read_text().splitlines() == ["run", "run"]
        assert "took over lease build-" in (tmp_path / "replica-1.log").read_text()
    finally:
        for replica in replicas:
            replica.stop()
        _end_processes_mentioning(str(runs))


def test_store_stopped_and_restarted_under_load(tmp_path: Path) -> None:
    server = SeaweedFS(tmp_path / "seaweedfs" / "data")
    server.start()
    replicas: list[RelayProcess] = []
    try:
        s3_client(server).create_bucket(Bucket="load")
        url = "s3://load/relay"
        env = _env(server, tmp_path)
        out = tmp_path / "exports"
        export = write_export(out, fake_sha(1), 1)
        publish = subprocess.run(
            [*_relay_command(), "publish", str(out / export.key), "--store", url],
            env={**os.environ, **env}, capture_output=True, text=True,
        )
        assert publish.returncode == 0, publish.stderr
        replicas = _replicas(2, url, env, tmp_path, "--memory-cache", "0")
        # The start-up counts exports once the store was listed (was "0 exports" before the first listing).
        log = (tmp_path / "replica-0.log").read_text()
        assert "s3://load/relay/: 1 exports" in log and "0 exports" not in log, log
        files = [f"{r.url}/{export.key}/{d.filename}" for r in replicas for d in export.dists]
        pages = [f"{r.url}/main/simple/monorepo-chain-a/" for r in replicas]
        stop = threading.Event()
        seen: list[tuple[str, int]] = []

        def load() -> None:
            for i in range(2000):  # bounded; ends when the test says so
                if stop.is_set():
                    return
                target = files[i % len(files)]
                seen.append((target, _status(target)))

        with ThreadPoolExecutor(4) as pool:
            workers = [pool.submit(load) for _ in range(4)]
            server.stop()
            down = [_status(f) for f in files]
            assert set(down) == {503}, down
            assert {_status(p) for p in pages} == {200}, "pages are served from memory"
            # Readiness says so (load balancers stop sending traffic); liveness does not.
            assert {_status(f"{r.url}/-/ready") for r in replicas} == {503}
            assert {_status(f"{r.url}/-/health") for r in replicas} == {200}
            server.start()
            # The store is back: every replica serves files again by itself.
            for target in files:
                for _ in range(240):
                    if _status(target) == 200:
                        break
                    stop.wait(0.25)
                assert _status(target) == 200, target
            for replica in replicas:
                for _ in range(240):  # ready again after the next listing that succeeds
                    if _status(f"{replica.url}/-/ready") == 200:
                        break
                    stop.wait(0.25)
                assert _status(f"{replica.url}/-/ready") == 200
            stop.set()
            for worker in workers:
                worker.result()
        assert {status for _, status in seen} <= {200, 503}, "never a 500 or a dropped connection"
    finally:
        for replica in replicas:
            replica.stop()
        server.stop()


def _relay_command() -> list[str]:
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(RELAY_ROOT)!r}); "
            "from relay.cli import main; sys.exit(main())"]



def test_replicas_on_one_host_keep_their_own_work_directories_and_daemons(tmp_path: Path) -> None:
    """Starting and stopping one replica leaves another's warm Pants daemon running (its own work
    directory, locked while it runs); an explicit --work-dir in use is refused with the fix."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "f").write_text("x")
    git(repo, "add", "f")
    git(repo, "commit", "-q", "-m", "one")
    store = tmp_path / "store"
    write_export(store, fake_sha(1), 1)
    # Default work directories go to TMPDIR: this test's directory.
    env = {"TMPDIR": str(tmp_path)}
    # No branch of that name: nothing is built, the builders only start and stop.
    args = ("--repo", str(repo), "--default-ref", "nothing", "--export-command", fake_command(tmp_path / "runs").template)
    first = RelayProcess(store, *args, log=tmp_path / "first.log", env=env)
    daemon = None
    try:
        (owned,) = tmp_path.glob("relay-work-*")
        # A stand-in for the warm builder's Pants daemon: a process whose command line says pantsd,
        # recorded where Pants records its daemon's pid.
        daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "pantsd"])
        pid_file = owned / "warm-0" / "worktree" / ".pids" / "abc" / "pantsd" / "pid"
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(str(daemon.pid))
        second = RelayProcess(store, *args, log=tmp_path / "second.log", env=env)
        assert second.stop() == 0
        assert daemon.poll() is None, "starting or stopping the second replica stopped the first one's daemon"
        assert f"work directory {owned}-2 " in (tmp_path / "second.log").read_text()
        assert first.get("/-/health").status == 200
        taken = subprocess.run(
            [sys.executable, "-m", "relay", "serve", "--store", str(store), "--port", "0", *args, "--work-dir", str(owned)],
            capture_output=True, text=True, timeout=60, cwd=RELAY_ROOT,
            env={**os.environ, "PYTHONPATH": str(RELAY_ROOT), **env},
        )
        assert taken.returncode == 1 and f"--work-dir {owned} is in use by another relay" in taken.stderr, taken.stderr
        # The daemon is its owner's: stopping the first replica stops it.
        first.stop()
        assert daemon.wait(30) is not None
    finally:
        first.stop()
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()

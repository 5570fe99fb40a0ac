"""`relay serve` in pull mode as a process: relative path options, and a restart after kill -9."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from pathlib import Path

from relay.building.materialize_test import fake_command, git
from relay.building.processes import alive
from relay.storage.catalog import CATALOG
from tests.relay_process import RelayProcess


def _ask_in_background(relay: RelayProcess, path: str) -> None:
    """A client's request that starts a long build. The test then kills or stops the relay, so the
    client sees its connection close: expected here, not an error of the test's thread."""

    def ask() -> None:
        with contextlib.suppress(OSError):
            relay.get(path, timeout=5)

    threading.Thread(target=ask, daemon=True).start()


def _repo(path: Path) -> str:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "f").write_text("x")
    git(path, "add", "f")
    git(path, "commit", "-q", "-m", "one")
    return git(path, "rev-parse", "HEAD")


def test_relative_path_options_as_a_new_user_types_them(tmp_path: Path) -> None:
    head = _repo(tmp_path / "repo")
    runs = tmp_path / "runs"
    relay = RelayProcess(
        Path("store"), "--repo", "repo", "--work-dir", "tmp", "--export-command", fake_command(runs).template,
        cwd=tmp_path,
    )
    try:
        response = relay.get(f"/{head}/simple/", timeout=60)
        assert response.status == 200, response.body.decode(errors="replace")
        assert (tmp_path / "store" / head / "manifest.json").is_file()
        assert (tmp_path / "tmp").is_dir()
    finally:
        assert relay.stop() == 0
    assert "Traceback" not in relay.log.read_text()


def _records(work: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((work / "running").glob("*.json"))]


def test_a_restart_after_kill_9_during_a_build_cleans_up_and_builds_once(tmp_path: Path) -> None:
    head = _repo(tmp_path / "repo")
    store, work, runs = tmp_path / "store", tmp_path / "work", tmp_path / "runs"
    args = ("--repo", str(tmp_path / "repo"), "--work-dir", str(work), "--builder", "cold")
    first = RelayProcess(store, *args, "--export-command", fake_command(runs, "--sleep 120").template)
    try:
        # A client asks; the build starts and runs long.
        _ask_in_background(first, f"/{head}/simple/")
        for _ in range(300):
            if runs.exists() and _records(work):
                break
            time.sleep(0.1)
        [record] = _records(work)
        assert alive(record["pgid"])
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        assert alive(record["pgid"]), "the build should outlive a relay killed with -9"
        staging = [p for p in store.iterdir() if p.name.startswith(".relay-tmp-")]
        assert staging, "the killed build's staging directory"
    finally:
        first.stop()

    # (Its default ref is no branch, so it follows none and builds only what is asked for.)
    second = RelayProcess(store, *args, "--default-ref", "none", "--export-command", fake_command(runs).template)
    try:
        # Before serving, the new relay stopped the orphaned build and removed what it owned.
        assert not alive(record["pgid"]), "the orphaned build is still running"
        # The store's lock files (a lease, a build lease the killed relay held) may stay: empty, and
        # the kernel dropped their locks with the process.
        assert [p.name for p in store.iterdir() if not p.name.startswith((".relay-lease-", ".relay-build-", CATALOG))] == []
        assert _records(work) == []
        assert [p for p in work.iterdir() if p.name.startswith("relay-")] == []
        assert git(tmp_path / "repo", "worktree", "list").count("\n") == 0
        response = second.get(f"/{head}/simple/", timeout=60)
        assert response.status == 200
        assert runs.read_text().splitlines() == ["run", "run"]
    finally:
        assert second.stop() == 0


def test_the_relay_stops_its_builds_when_it_stops(tmp_path: Path) -> None:
    head = _repo(tmp_path / "repo")
    work, runs = tmp_path / "work", tmp_path / "runs"
    relay = RelayProcess(
        tmp_path / "store", "--repo", str(tmp_path / "repo"), "--work-dir", str(work),
        "--export-command", fake_command(runs, "--sleep 120").template,
    )
    try:
        _ask_in_background(relay, f"/{head}/simple/")
        for _ in range(300):
            if runs.exists() and _records(work):
                break
            time.sleep(0.1)
        [record] = _records(work)
    finally:
        assert relay.stop() == 0
    assert not alive(record["pgid"])
    assert _records(work) == []

"""`relay verify` on fixture exports: each dist alone in a fresh venv, with real pip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from relay.cli import main
from relay_testing.exports import CHAIN, DistSpec, fake_sha, write_export
from relay.tools.verify import Installer, Source, Target, VerifyError, export_source, index_source, select, verify

BROKEN = (
    *CHAIN,
    # Imports a module no requirement provides: installs, then fails to import.
    DistSpec("monorepo.undeclared", imports=("not_a_module_anywhere",)),
    # Requires a monorepo dist the export does not have: pip cannot install it.
    DistSpec("monorepo.orphan", requires=("monorepo.missing",)),
)


@pytest.fixture(autouse=True)
def isolated_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's pip configuration (extra indexes, find-links) must not reach the venvs' pip."""
    for key in list(os.environ):
        if key.startswith("PIP_") and key != "PIP_CERT":
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)


def test_every_dist_of_a_sound_export_installs_alone_and_imports(store_dir: Path) -> None:
    export = write_export(store_dir, fake_sha(1), 1)
    source = export_source(store_dir / export.key, ["--no-index"])
    assert [t.requirement for t in source.targets] == [f"{d.name}=={export.version}" for d in export.dists]
    seen: list[str] = []
    outcomes = verify(source, jobs=2, report=lambda o: seen.append(o.name))
    assert [o.ok for o in outcomes] == [True] * len(CHAIN), outcomes
    assert sorted(seen) == sorted(d.name for d in export.dists)
    by_name = {o.name: o.detail for o in outcomes}
    assert by_name["monorepo.chain.a"] == f"{export.version} (commit {export.sha[:12]}): 1 module imported"


def test_a_dist_that_cannot_stand_alone_fails_the_run(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = write_export(store_dir, fake_sha(2), 2, BROKEN)
    status = main([
        "verify", str(store_dir / export.key), "--extra-index-url", "file:///nonexistent",
        "--dist", "monorepo.undeclared", "--dist", "monorepo.orphan", "--dist", "monorepo.chain.c",
    ])
    out = capsys.readouterr().out
    assert status == 1, out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith(("ok", "FAILED"))}
    assert lines["monorepo.chain.c"].startswith("ok")
    assert lines["monorepo.undeclared"].startswith("FAILED")
    assert "import monorepo_undeclared: ModuleNotFoundError: No module named 'not_a_module_anywhere'" in lines[
        "monorepo.undeclared"
    ]
    assert lines["monorepo.orphan"].startswith("FAILED")
    assert "monorepo.missing" in lines["monorepo.orphan"] or "monorepo-missing" in lines["monorepo.orphan"]  # pip / uv
    assert out.splitlines()[-1] == "1 ok, 2 failed"


def test_bad_input_is_named(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(VerifyError, match="is not an export directory"):
        export_source(store_dir / "nothing-here")
    export = write_export(store_dir, fake_sha(3), 3)
    with pytest.raises(VerifyError, match="monorepo.nope: not in the export"):
        select(export_source(store_dir / export.key), ["monorepo.nope"])
    assert [t.name for t in select(export_source(store_dir / export.key), ["Monorepo_Chain_B"]).targets] == [
        "monorepo.chain.b"
    ]
    assert main(["verify", str(store_dir / "nothing-here")]) == 2
    assert "is not an export directory" in capsys.readouterr().err


class _Index(BaseHTTPRequestHandler):
    """A root page in PEP 691 JSON that records the Authorization header it was sent."""

    seen: list[tuple[str, str | None, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).seen.append((self.path, self.headers.get("Accept"), self.headers.get("Authorization")))
        body = json.dumps({"meta": {"api-version": "1.1"}, "projects": [{"name": "monorepo.chain.b"},
                                                                          {"name": "monorepo.chain.a"}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def index() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_index_lists_its_dists_from_the_root_page(index: str) -> None:
    _Index.seen.clear()
    source = index_source(f"http://alice:s%40cret@{index}/main/simple")
    assert [t.requirement for t in source.targets] == ["monorepo.chain.a", "monorepo.chain.b"]
    # pip gets the URL as given (with its credentials); the description never shows them.
    assert source.pip_args == ("--index-url", f"http://alice:s%40cret@{index}/main/simple/")
    assert "alice" not in source.description
    path, accept, authorization = _Index.seen[0]
    assert path == "/main/simple/"
    assert accept == "application/vnd.pypi.simple.v1+json"
    assert authorization == "Basic YWxpY2U6c0BjcmV0"  # alice:s@cret


class _HostileIndex(_Index):
    """A root page whose project names are pip options."""

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"meta": {"api-version": "1.1"}, "projects": [
            {"name": "monorepo.chain.a"}, {"name": "-rhttp://127.0.0.1:9/evil.txt"}, {"name": "--pre"}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        self.end_headers()
        self.wfile.write(body.encode())


def test_names_from_an_index_are_checked_before_they_reach_pip() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileIndex)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(VerifyError, match=r"-rhttp://127.0.0.1:9/evil.txt.*not a valid project name"):
            index_source(f"http://127.0.0.1:{server.server_address[1]}/main/simple/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_pip_gets_the_requirement_after_the_end_of_its_options(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import relay.tools.verify as verify_module

    export = write_export(store_dir, fake_sha(4), 4)
    source = select(export_source(store_dir / export.key, ["--no-index"]), ["monorepo.chain.c"])
    seen: list[list[str]] = []
    real_run = verify_module._run

    def recording_run(argv, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(verify_module, "_run", recording_run)
    (outcome,) = verify(source, jobs=1)
    assert outcome.ok, outcome
    (install,) = [a for a in seen if "install" in a]
    assert install[-2:] == ["--", f"monorepo.chain.c=={export.version}"]


# A dense 30-dist cycle (each member requires 10 others): the pip Python 3.9 bundles (23.0.1) had not
# resolved one after 120 s (docs/benchmarks.md); uv and pip >= 25.2 take seconds.
CYCLE_SIZE, CYCLE_DENSITY = 30, 10
CYCLE = tuple(
    DistSpec(
        f"monorepo.cycle.k{i:02d}",
        requires=tuple(f"monorepo.cycle.k{(i + step) % CYCLE_SIZE:02d}" for step in range(1, CYCLE_DENSITY + 1)),
    )
    for i in range(CYCLE_SIZE)
)


def test_verify_finishes_on_a_dense_dependency_cycle_and_names_its_installer(
    store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = write_export(store_dir, fake_sha(5), 5, CYCLE)
    status = main([
        "verify", str(store_dir / export.key), "--timeout", "300", "--jobs", "2",
        "--dist", "monorepo.cycle.k00", "--dist", "monorepo.cycle.k17",
    ])
    out = capsys.readouterr().out
    assert status == 0, out
    (installer,) = [line for line in out.splitlines() if line.startswith("installing with ")]
    assert installer.startswith("installing with uv "), out  # the relay's venv has the uv package
    assert out.splitlines()[-1] == "2 ok, 0 failed"


def test_the_pip_installer_is_a_current_pip_in_its_own_tool_venv(store_dir: Path) -> None:
    export = write_export(store_dir, fake_sha(6), 6, CYCLE)
    source = select(export_source(store_dir / export.key, ["--no-index"]), ["monorepo.cycle.k05"])
    announced: list[Installer] = []
    (outcome,) = verify(source, jobs=1, timeout=300, installer="pip", announce=announced.append)
    (installer,) = announced
    assert installer.kind == "pip" and installer.shared and not installer.note, installer
    major, minor = (int(p) for p in installer.version.split()[1].split(".")[:2])
    assert (major, minor) >= (25, 2), installer
    assert installer.description == f"{installer.version} in its own tool venv"
    assert outcome.ok, outcome


def _gone(marker: str) -> list[str]:
    """Command lines of live processes that mention `marker` (none once verify has returned)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if marker in cmdline and "zombie" not in state:
            alive.append(f"{entry.name}: {cmdline}")
    return alive


def test_a_timed_out_command_ends_with_everything_it_started(tmp_path: Path) -> None:
    import relay.tools.verify as verify_module

    marker = f"verify-grandchild-{os.getpid()}-{tmp_path.name}"
    # The launcher starts a child that outlives it unless its whole process group is ended, as
    # `pip --python` does (the launcher execs nothing: it waits on pip under the venv's Python).
    script = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', {marker!r}])\n"
        "time.sleep(120)\n"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        verify_module._run([sys.executable, "-c", script], dict(os.environ), 2.0, tmp_path)
    assert _gone(marker) == []


class _Silent(BaseHTTPRequestHandler):
    """An index that accepts the connection and never answers: pip waits until it is killed."""

    def do_GET(self) -> None:  # noqa: N802
        time.sleep(60)

    def log_message(self, *args: object) -> None:
        pass


def test_nothing_outlives_verify_after_a_timeout(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Silent)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    index = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    try:
        source = Source("a silent index", ("--index-url", index, "--timeout", "100", "--retries", "0"),
                        (Target("monorepo.never", "monorepo.never"),))
        with tempfile.TemporaryDirectory() as work:
            # The pip Python bundles drives the venv's own interpreter (`pip --python`): the launcher
            # and the pip it starts, the shape that left an orphan at 96 % CPU on StackStorm st2.
            installer = Installer.pip_in_tool_venv(sys.executable, Path(work), dict(os.environ), 120, upgrade=False)
            assert installer.shared, installer  # pip >= 22.3
            (outcome,) = verify(source, jobs=1, timeout=8, installer=installer)
        assert not outcome.ok and outcome.detail.startswith("timed out after 8 s running "), outcome
        assert _gone(index) == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_uv_gets_the_url_requirements_as_constraints(store_dir: Path, tmp_path: Path) -> None:
    from relay.url_constraints_test import _wheel_bytes

    wheel = tmp_path / "urlpkg-1.0-py3-none-any.whl"
    wheel.write_bytes(_wheel_bytes("urlpkg", "1.0"))
    dists = (
        DistSpec("monorepo.top", requires=("monorepo.uses_url",)),
        DistSpec("monorepo.uses_url", third_party=(f"urlpkg @ {wheel.as_uri()}",), imports=("urlpkg",)),
    )
    export = write_export(store_dir, fake_sha(7), 7, dists)
    source = export_source(store_dir / export.key, ["--no-index"])
    assert [c.replace(" ", "") for c in source.url_constraints] == [f"urlpkg@{wheel.as_uri()}"]
    outcomes = verify(select(source, ["monorepo.top"]), jobs=1, timeout=300, installer="uv")
    assert [o.ok for o in outcomes] == [True], outcomes

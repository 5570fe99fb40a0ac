"""`relay verify` on fixture exports: each dist alone in a fresh venv, with real pip."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from relay.cli import main
from relay.testing import CHAIN, DistSpec, fake_sha, write_export
from relay.verify import VerifyError, export_source, index_source, select, verify

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
    assert "monorepo.missing" in lines["monorepo.orphan"]
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
    import relay.verify as verify_module

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

